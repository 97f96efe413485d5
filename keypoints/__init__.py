"""Keypoint bottleneck ops, the keypoint network shared by Transporter and PermaKey, and keypoint pictures."""

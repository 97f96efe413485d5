"""The training floor: library code between the model packages (data, keypoints, permakey, transporter, rl) and the
Sacred mains in experiments/. Resumable fits and their checkpoints, the keypoint-training harness with each model's
method (PermaKey's schedule and refit), keypoint health, precision, finding and loading keypointers, the agent and
option learner's one builder and resumable trainer, and the test protocol's scoring. Nothing here reads a Sacred
config or imports experiments/: a main turns its config into settings and makes one call down."""

"""The supported Atari games: one table, one lookup.

K follows the PermaKey authors' per-game configs where they exist (docs/method.md section 3.8); for games PermaKey did
not use (pong, breakout), K is the maximum number of moving entities, Transporter's rule (Transporter paper, section
4.1). The tracking threshold epsilon, in [-1, 1] units, is Transporter's Appendix A table where it gives one; elsewhere
it is None and the evaluation derives it from the ground truth (average object extent), the paper's stated rule. Moving
categories are OCAtari category names (RAM mode, hud=False) of the entities that move; static scenery (pills, blocks,
platforms, HUD) is recorded in the datasets but excluded from keypoint scoring.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Game:
    name: str
    """Our snake_case name, used on the command line (GAME=ms_pacman)."""
    ale_id: str
    """Gymnasium id of the ALE environment."""
    ocatari_name: str
    """OCAtari's game name, for its RAM object extraction."""
    num_keypoints: int
    moving_categories: tuple[str, ...]
    epsilon: float | None


GAMES: dict[str, Game] = {
    g.name: g
    for g in (
        Game("pong", "ALE/Pong-v5", "Pong", 3, ("Player", "Enemy", "Ball"), 0.20),
        Game("ms_pacman", "ALE/MsPacman-v5", "MsPacman", 7, ("Player", "Ghost", "Fruit"), 0.15),
        Game(
            "frostbite",
            "ALE/Frostbite-v5",
            "Frostbite",
            20,
            ("Player", "Bear", "Bird", "Crab", "Clam", "GreenFish", "FloatingBlock"),
            0.20,
        ),
        Game(
            "seaquest",
            "ALE/Seaquest-v5",
            "Seaquest",
            10,
            ("Player", "Shark", "Submarine", "Diver", "EnemyMissile", "SurfaceSubmarine", "PlayerMissile"),
            None,
        ),
        Game("battlezone", "ALE/BattleZone-v5", "BattleZone", 8, ("Blue_Tank", "Radar_Content"), None),
        Game("breakout", "ALE/Breakout-v5", "Breakout", 2, ("Player", "Ball"), None),
        Game("enduro", "ALE/Enduro-v5", "Enduro", 10, ("Player", "Car"), None),
        Game(
            "montezuma_revenge",
            "ALE/MontezumaRevenge-v5",
            "MontezumaRevenge",
            10,
            ("Player", "Skull", "Spider", "Snake"),
            None,
        ),
        Game(
            "space_invaders",
            "ALE/SpaceInvaders-v5",
            "SpaceInvaders",
            25,
            ("Player", "Alien", "Bullet", "Satellite"),
            None,
        ),
    )
}


class UnknownGameError(ValueError):
    pass


def get_game(name: str) -> Game:
    """Looks a game up by our name; accepts `MsPacman`, `ms-pacman` and `ms_pacman` alike."""
    key = name.strip().lower().replace("-", "_")
    for game in GAMES.values():
        if key in (game.name, game.ocatari_name.lower(), game.name.replace("_", "")):
            return game
    raise UnknownGameError(f"Unknown game {name!r}. Supported games: {', '.join(sorted(GAMES))}.")

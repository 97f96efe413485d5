import pytest

from data.atari import GroundTruth
from data.games import GAMES, UnknownGameError, get_game

REQUIRED = {
    "pong",
    "ms_pacman",
    "frostbite",
    "seaquest",
    "battlezone",
    "breakout",
    "enduro",
    "montezuma_revenge",
    "space_invaders",
}


def test_table_covers_the_papers_games():
    assert REQUIRED <= set(GAMES)


def test_lookup_accepts_common_spellings():
    assert get_game("MsPacman").name == "ms_pacman"
    assert get_game("ms-pacman").name == "ms_pacman"
    assert get_game("msPacman").name == "ms_pacman"


def test_unknown_game_lists_supported_ones():
    with pytest.raises(UnknownGameError) as e:
        get_game("tetris")
    assert "tetris" in str(e.value)
    for name in REQUIRED:
        assert name in str(e.value)


@pytest.mark.parametrize("name", sorted(GAMES))
def test_moving_categories_exist_in_ocatari(name):
    game = get_game(name)
    assert set(game.moving_categories) <= set(GroundTruth(game).categories)
    assert game.num_keypoints >= 1


def test_transporter_epsilons():
    # Transporter Appendix A: pong 0.20, ms_pacman 0.15, frostbite 0.20.
    assert (get_game("pong").epsilon, get_game("ms_pacman").epsilon, get_game("frostbite").epsilon) == (0.2, 0.15, 0.2)

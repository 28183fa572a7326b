from pathlib import Path

import pytest

from freshet.config import Config, ConfigError, load_config
from ps.config import HashedTableConfig


def test_defaults_without_file() -> None:
    cfg = load_config(path=None, environ={})
    assert cfg == Config()
    assert cfg.topics.partitions["features"] == 4


def test_file_then_environment_override(tmp_path: Path) -> None:
    f = tmp_path / "f.toml"
    f.write_text(
        '[flink]\nparallelism = 1\n[joiner]\nwindow_s = 10\n'
        '[[model.slots]]\nname = "user_id"\ndim = 8\n'
    )
    cfg = load_config(f, environ={"FRESHET__FLINK__PARALLELISM": "3"})
    assert cfg.flink.parallelism == 3  # environment beats the file
    assert cfg.joiner.window_s == 10.0  # file beats the default
    assert [(s.name, s.dim) for s in cfg.model.slots] == [("user_id", 8)]


def test_config_file_named_by_environment(tmp_path: Path) -> None:
    f = tmp_path / "other.toml"
    f.write_text("[serving]\nport = 9999\n")
    assert load_config(environ={"FRESHET_CONFIG": str(f)}).serving.port == 9999


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"FRESHET__FLINK__PARALLELISM": "two"}, "flink.parallelism: expected int"),
        ({"FRESHET__FLINK__NOPE": "1"}, "unknown keys ['nope']"),
        ({"FRESHET__NOSECTION__X": "1"}, "no section 'nosection'"),
    ],
)
def test_bad_overrides_say_what_is_wrong(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(path=None, environ=environ)


def test_json_round_trip_for_shipping_to_workers() -> None:
    cfg = load_config(path=None, environ={"FRESHET__JOINER__WINDOW_S": "7"})
    assert Config.from_json(cfg.to_json()) == cfg


def test_unknown_topic_is_an_error() -> None:
    with pytest.raises(KeyError, match="unknown topic"):
        Config().topics.name("feature")


def test_unknown_model_kind_fails_at_load_naming_the_known_ones(tmp_path: Path) -> None:
    """At load, with the key's path: not in a Flink worker when the trainer builds it."""
    from udfs.models import model_kinds

    f = tmp_path / "freshet.toml"
    f.write_text('[model]\nkind = "dcn2"\n')
    with pytest.raises(ConfigError) as e:
        load_config(f, environ={})
    assert str(e.value) == f"model.kind: 'dcn2' is not one of {', '.join(model_kinds())}"


@pytest.mark.parametrize("value", ["user_id,item_id", '{"name": "user_id"}'])
def test_a_list_variable_that_is_not_a_json_list_names_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match=r"^model\.slots \(FRESHET__MODEL__SLOTS\): "
                                          r"expected a JSON list"):
        load_config(path=None, environ={"FRESHET__MODEL__SLOTS": value})


def test_hashed_tables_need_their_row_count_at_load() -> None:
    with pytest.raises(ConfigError, match=r"^train\.table\.rows: must be an int >= 1"):
        load_config(path=None, environ={"FRESHET__TRAIN__TABLE__KIND": "hashed"})
    cfg = load_config(path=None, environ={"FRESHET__TRAIN__TABLE__KIND": "hashed",
                                          "FRESHET__TRAIN__TABLE__ROWS": "1000"})
    assert cfg.train.table == HashedTableConfig(rows=1000)

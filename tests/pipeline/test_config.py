import pytest

from sanling.core.config import Config, config_from_dict, load_config
from sanling.core.errors import ConfigError


def test_defaults_match_contract():
    c = Config()
    assert (c.horizon_months, c.cadence_months, c.test_periods) == (1, 1, 12)
    assert c.tiers.red.startswith("criminal >= 1")
    assert "hazard" in c.categories


def test_error_names_the_key():
    with pytest.raises(ConfigError, match=r"key 'model.num_leaves'"):
        config_from_dict({"model": {"num_leaves": 1}})
    with pytest.raises(ConfigError, match=r"key 'horizon_mnths': unknown key"):
        config_from_dict({"horizon_mnths": 3})


def test_yaml_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(
        "horizon_months: 12\ncadence_months: 12\ncategories: {landslide: 地质灾害}\n", encoding="utf-8"
    )
    c = load_config(p)
    assert c.horizon_months == 12 and c.categories["landslide"] == "地质灾害" and "dispute" in c.categories
    p.write_text("- a list\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(p)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")

import pandas as pd
import pytest
from tiny_frames import make_frame


@pytest.fixture(scope="session")
def frame() -> pd.DataFrame:
    return make_frame()

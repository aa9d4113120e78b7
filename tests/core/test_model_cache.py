"""The cached model is reused only while everything training reads is unchanged."""

import pytest

from clinic.model_cache import fingerprint


@pytest.fixture
def project(tmp_path):
    for name, text in {"config.yml": "pipeline: []\n", "domain.yml": "version: '3.1'\n",
                       "data/nlu/it/greetings.yml": "nlu: []\n", "clinic/nlu/lexicon.py": "STOP = 'stop'\n",
                       "clinic/policies/consent.py": "PRIORITY = 7\n", "clinic/web.py": "PORT = 1\n"}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.mark.parametrize("changed", ["config.yml", "data/nlu/it/greetings.yml", "clinic/nlu/lexicon.py",
                                     "clinic/policies/consent.py"])
def test_a_change_to_what_training_reads_asks_for_a_new_model(project, changed):
    before = fingerprint(project)
    (project / changed).write_text((project / changed).read_text() + "# changed\n")
    assert fingerprint(project) != before


def test_a_change_elsewhere_keeps_the_cached_model(project):
    before = fingerprint(project)
    (project / "clinic/web.py").write_text("PORT = 2\n")
    (project / "clinic/nlu/__pycache__").mkdir()
    (project / "clinic/nlu/__pycache__/lexicon.cpython-310.pyc").write_bytes(b"\0")
    assert fingerprint(project) == before

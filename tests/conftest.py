import os
import socket
import urllib.request

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    """No test may reach the network: every download path raises."""

    def refuse(*args, **kwargs):
        raise OSError("network disabled in tests: no test may download anything")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)

"""Graph media endpoints: upload with Meta's type and size limits, look-up, download with the token."""

from __future__ import annotations

import hashlib

import pytest
import requests

PDF = b"%PDF-1.4\n% referto di prova\n"


def auth(sandbox) -> dict:
    return {"Authorization": f"Bearer {sandbox.access_token}"}


def test_upload_look_up_and_download_round_trip(sandbox):
    reply = sandbox.upload(PDF, "application/pdf", "referto.pdf")
    assert reply.status_code == 200
    media_id = reply.json()["id"]
    assert set(reply.json()) == {"id"} and media_id.isdigit()
    info = requests.get(f"{sandbox.base_url}/{sandbox.api_version}/{media_id}", headers=auth(sandbox), timeout=10)
    assert info.json() == {
        "messaging_product": "whatsapp",
        "url": info.json()["url"],
        "mime_type": "application/pdf",
        "sha256": hashlib.sha256(PDF).hexdigest(),
        "file_size": len(PDF),
        "id": media_id,
    }
    download = requests.get(info.json()["url"], headers=auth(sandbox), timeout=10)
    assert download.content == PDF
    assert download.headers["Content-Type"].startswith("application/pdf")


def test_the_media_url_needs_the_token(sandbox):
    media_id = sandbox.upload(PDF, "application/pdf").json()["id"]
    url = requests.get(f"{sandbox.base_url}/{sandbox.api_version}/{media_id}", headers=auth(sandbox),
                       timeout=10).json()["url"]
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(f"{sandbox.base_url}/{sandbox.api_version}/{media_id}", timeout=10).status_code == 401


def test_upload_needs_the_token_and_the_right_number(sandbox):
    reply = requests.post(sandbox.media_url, files={"file": ("a.pdf", PDF, "application/pdf")},
                          data={"type": "application/pdf", "messaging_product": "whatsapp"}, timeout=10)
    assert reply.status_code == 401 and reply.json()["error"]["code"] == 190
    other = f"{sandbox.base_url}/{sandbox.api_version}/42/media"
    reply = requests.post(other, headers=auth(sandbox), files={"file": ("a.pdf", PDF, "application/pdf")},
                          data={"type": "application/pdf", "messaging_product": "whatsapp"}, timeout=10)
    assert reply.status_code == 400 and reply.json()["error"]["error_subcode"] == 33


@pytest.mark.parametrize("mime, limit", [("image/jpeg", 5 * 1024 * 1024), ("image/webp", 500 * 1024),
                                         ("audio/ogg", 16 * 1024 * 1024)])
def test_size_limits_at_and_past_the_boundary(sandbox, mime, limit):
    assert sandbox.upload(b"x" * limit, mime).status_code == 200
    reply = sandbox.upload(b"x" * (limit + 1), mime)
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == 131053


def test_an_unsupported_type_is_131053(sandbox):
    reply = sandbox.upload(b"GIF89a", "image/gif")
    assert reply.json()["error"]["code"] == 131053
    assert "image/gif" in reply.json()["error"]["error_data"]["details"]


def test_upload_without_messaging_product_or_file(sandbox):
    reply = requests.post(sandbox.media_url, headers=auth(sandbox), files={"file": ("a.pdf", PDF, "application/pdf")},
                          data={"type": "application/pdf"}, timeout=10)
    assert reply.json()["error"]["code"] == 100
    reply = requests.post(sandbox.media_url, headers=auth(sandbox),
                          data={"type": "application/pdf", "messaging_product": "whatsapp"}, timeout=10)
    assert reply.json()["error"]["code"] == 131008


def test_delete_and_unknown_media(sandbox):
    media_id = sandbox.upload(PDF, "application/pdf").json()["id"]
    url = f"{sandbox.base_url}/{sandbox.api_version}/{media_id}"
    assert requests.delete(url, headers=auth(sandbox), timeout=10).json() == {"success": True}
    reply = requests.get(url, headers=auth(sandbox), timeout=10)
    assert reply.status_code == 400 and reply.json()["error"]["code"] == 100

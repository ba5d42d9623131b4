"""``/docs`` and ``/redoc`` work offline: their pages load assets from the API, never a CDN."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.integration

ASSET = re.compile(r'(?:src|href)="([^"]+)"')


@pytest.mark.parametrize(
    ("page", "expected"),
    [("/docs", {"javascript", "css"}), ("/redoc", {"javascript"})],
)
def test_docs_pages_use_only_local_assets(
    client: TestClient, page: str, expected: set[str]
) -> None:
    response = client.get(page)
    assert response.status_code == 200
    html = response.text
    assert "http://" not in html and "https://" not in html, html
    urls = ASSET.findall(html)
    assert urls, html
    kinds = set()
    for url in urls:
        assert url.startswith("/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        content_type = asset.headers["content-type"]
        assert len(asset.content) > 0
        kinds |= {kind for kind in ("javascript", "css") if kind in content_type}
    assert expected <= kinds
    # The page's script fetches the schema from the same API.
    assert client.get("/openapi.json").status_code == 200

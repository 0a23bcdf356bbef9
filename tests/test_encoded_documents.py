"""Discovery and the JWKS are encoded once per content (web/public_documents.py EncodedDocuments):
what is served stays what a fresh encoding of the current document would be."""

from __future__ import annotations

from flask import Flask, json

from oidc_link.web.public_documents import EncodedDocuments
from tests.conftest import ISSUER


def test_discovery_and_jwks_are_served_as_jsonify_would_encode_them(app: Flask) -> None:
    client = app.test_client()
    for path in ("/.well-known/openid-configuration", "/jwks.json"):
        first = client.get(path, base_url=ISSUER)
        again = client.get(path, base_url=ISSUER)
        with app.app_context():
            fresh = (app.json.dumps(json.loads(first.get_data())) + "\n").encode()

        assert first.status_code == again.status_code == 200
        assert first.get_data() == again.get_data() == fresh
        assert first.mimetype == "application/json"
        assert first.headers["Access-Control-Allow-Origin"] == "*"


def test_a_document_is_built_once_per_key_and_the_cache_stays_small(app: Flask) -> None:
    documents = EncodedDocuments(app.json.dumps)
    builds: list[str] = []

    def document(name: str) -> dict[str, str]:
        builds.append(name)
        return {"name": name}

    with app.app_context():
        body, etag = documents.get(("a",), lambda: document("a"))
        assert documents.get(("a",), lambda: document("a")) == (body, etag)
        other, other_etag = documents.get(("b",), lambda: document("b"))
        for number in range(EncodedDocuments.LIMIT * 2):
            documents.get((str(number),), lambda: {})

    assert builds == ["a", "b"]
    assert json.loads(body) == {"name": "a"} and json.loads(other) == {"name": "b"}
    assert etag != other_etag
    assert len(documents) <= EncodedDocuments.LIMIT

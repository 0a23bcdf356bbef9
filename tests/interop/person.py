"""A person signing in on the hosted pages over real HTTP, for the interop tests.

A ``requests.Session`` keeps the cookies as a browser would; the code comes from the sandbox
console, as the operator would read it. Kept small: both client libraries' tests share it.
"""

from __future__ import annotations

from urllib.parse import urljoin

import requests
from bs4 import BeautifulSoup

from tests.conftest import JENNY
from tests.sandbox_console import announced_code


class Person:
    def __init__(self, console: list[str]) -> None:
        self.console = console
        self.http = requests.Session()

    def sign_in(self, authorization_url: str, email: str = JENNY) -> requests.Response:
        """From the RP's authorization URL to wherever the provider sends the browser back."""
        email_page = self.visit(authorization_url)
        code_page = self.submit(email_page, "/email", email=email)
        return self.submit(code_page, "/code", code=announced_code(self.console))

    def visit(self, url: str) -> requests.Response:
        """GET ``url`` and follow redirects, as a browser does."""
        page = self.http.get(url, timeout=10)
        page.raise_for_status()
        return page

    def submit(
        self, page: requests.Response, action_suffix: str, **fields: str
    ) -> requests.Response:
        """Post the page's form whose action ends with ``action_suffix``; follow redirects."""
        forms = BeautifulSoup(page.text, "html.parser").find_all("form")
        form = next((f for f in forms if f.get("action", "").endswith(action_suffix)), None)
        assert form is not None, f"no form posting to *{action_suffix} on {page.url}"
        data = {
            field["name"]: field.get("value", "")
            for field in form.find_all("input")
            if field.get("name")
        }
        data.update(fields)
        answer = self.http.post(urljoin(page.url, form["action"]), data=data, timeout=10)
        answer.raise_for_status()
        return answer

    def log_out(self, end_session_url: str) -> requests.Response:
        """Follow an RP's logout link; confirm on the provider's page if it asks."""
        page = self.visit(end_session_url)
        forms = BeautifulSoup(page.text, "html.parser").find_all("form")
        question = next((f["action"] for f in forms if "/logout/" in f.get("action", "")), None)
        if question is not None:
            return self.submit(page, question, choice="sign_out")
        return page

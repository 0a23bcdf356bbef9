"""Friendly error pages: a short message, what to do next, and the request id."""

from __future__ import annotations

from flask import render_template

HTTP_MESSAGES = {
    404: "There is nothing at this address. Go back to the site you came from and start again.",
    405: "This page cannot be used that way. Go back to the site you came from and start again.",
}


def error_page(
    title: str,
    message: str,
    status: int,
    *,
    back_url: str | None = None,
    site: str | None = None,
    next_url: str | None = None,
    next_label: str | None = None,
) -> tuple[str, int]:
    """A page that explains, and offers the way on (``next_url``, one of our own pages) or
    back to the site when we know it."""
    page = render_template(
        "error.html",
        title=title,
        message=message,
        back_url=back_url,
        site=site,
        next_url=next_url,
        next_label=next_label,
    )
    return page, status

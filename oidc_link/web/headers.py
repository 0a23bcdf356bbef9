"""Security headers shared by every page."""

# Pages may load our own stylesheet and images and nothing else (DESIGN.md §7.9).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'"
)

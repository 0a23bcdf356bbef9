# oidc-link: build wheels and install them into a virtual environment in one stage; the
# slim final stage gets that environment only (no compiler, no wheels, no pip cache, no
# source tree) and runs as an unprivileged user.
#   docker build -t oidc-link .
# Run it with docker-compose.yml (the provider and its Redis); see the README's Production.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY oidc_link ./oidc_link
COPY templates ./templates
COPY static ./static
# The oidc-link wheel and every dependency's, then an environment with only those installed
# (without pip itself: the final image installs nothing).
RUN pip wheel --no-cache-dir --wheel-dir /wheels . \
    && python -m venv --without-pip /opt/oidc-link \
    && pip --python /opt/oidc-link/bin/python install --no-cache-dir --no-index \
        --find-links /wheels oidc-link

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/oidc-link/bin:$PATH \
    OIDC_LINK_CONFIG=/etc/oidc-link/oidc-link.toml
COPY --from=builder /opt/oidc-link /opt/oidc-link
RUN useradd --system --uid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin oidc-link
USER 10001:10001

EXPOSE 8000
# /healthz: the process answers (no Redis call). Python's urllib, since the image has no curl;
# urlopen raises on anything but 2xx, and the exception exits 1.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# oidc-link (granian's main process) is PID 1: SIGTERM (docker stop) lets in-flight requests finish within
# [server] graceful_timeout (30 s); give `docker stop` a longer --time (compose does: 40 s).
STOPSIGNAL SIGTERM
CMD ["oidc-link", "serve", "--host", "0.0.0.0", "--port", "8000"]

# loss-service, CPU torch on the official slim Python image:
#   docker build -t loss-service .
#   docker run -p 8000:8000 loss-service          (configure with LOSS_SERVICE_* variables)
# CUDA torch (PyPI's Linux wheels are the CUDA build; or name one of PyTorch's cuXXX indexes):
#   docker build --build-arg TORCH_INDEX_URL=https://pypi.org/simple -t loss-service:cuda .
#   docker run --gpus all -p 8000:8000 -e LOSS_SERVICE_DEVICE=cuda loss-service:cuda
# BASE_IMAGE lets a test build start from a locally made image with Python at `python`/`pip`
# on PATH (.ci/container-smoke); users keep the default.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# Where torch comes from. PyTorch's CPU index by default: PyPI's Linux wheel would bring the
# CUDA libraries, several GB that a CPU host never uses.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, in layers of their own: torch (constraints.txt pins the release that CI
# tests; any build of it, +cpu or +cuXXX, satisfies the pin), then the rest of pyproject.toml's,
# so that neither a code change nor a new dependency reinstalls torch.
COPY constraints.txt ./
RUN pip install --index-url "${TORCH_INDEX_URL}" -c constraints.txt torch
COPY pyproject.toml README.md ./
RUN mkdir service && touch service/__init__.py \
    && pip install -c constraints.txt . \
    && pip uninstall -y loss-service \
    && rm -rf service build ./*.egg-info

COPY service ./service
RUN pip install --no-deps . && rm -rf build ./*.egg-info

# A numeric user (and group), so that Kubernetes' runAsNonRoot can verify it without reading
# /etc/passwd; deploy/k8s runs the pod as the same 10001.
RUN groupadd --gid 10001 loss && useradd --uid 10001 --gid 10001 --create-home loss
USER 10001:10001

# The service writes nothing but under the temporary directory (tempfile.gettempdir(): /tmp
# unless TMPDIR says otherwise), so the root filesystem can be mounted read-only.
ENV LOSS_SERVICE_HOST=0.0.0.0 \
    LOSS_SERVICE_PORT=8000 \
    LOSS_SERVICE_DEVICE=cpu
EXPOSE 8000

# Liveness, on whatever port LOSS_SERVICE_PORT says (a run may change it).
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/v2/health/live' % os.environ.get('LOSS_SERVICE_PORT', '8000'), timeout=2)"]

# SIGTERM (docker stop, Kubernetes) lets in-flight requests finish within
# LOSS_SERVICE_SHUTDOWN_GRACE seconds, then the process exits 0.
CMD ["loss-service", "serve"]

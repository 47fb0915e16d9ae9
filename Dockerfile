# loss-service on CPU torch. Build: docker build -t loss-service .
# Run:   docker run -p 8000:8000 loss-service   (configure with LOSS_SERVICE_* variables)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, in their own layer: code changes do not reinstall torch.
# torch comes from PyTorch's CPU wheel index (the PyPI wheel would bring CUDA, several GB);
# constraints.txt pins the same release that CI tests.
COPY pyproject.toml constraints.txt README.md ./
RUN mkdir service && touch service/__init__.py \
    && pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0" \
    && pip install -c constraints.txt . \
    && pip uninstall -y loss-service \
    && rm -rf service build

COPY service ./service
RUN pip install --no-deps . && rm -rf build

RUN useradd --create-home --uid 10001 loss
USER loss

ENV LOSS_SERVICE_HOST=0.0.0.0 \
    LOSS_SERVICE_PORT=8000 \
    LOSS_SERVICE_DEVICE=cpu
EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/v2/health/live' % os.environ.get('LOSS_SERVICE_PORT', '8000'), timeout=2)"]

CMD ["loss-service", "serve"]

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY . .
RUN pip install . && useradd --create-home --uid 10001 spendsentry && mkdir -p /data && chown spendsentry /data
USER spendsentry
# 0.0.0.0 inside the container only: the worker refuses it unless SPENDSENTRY_API_TOKENS or
# SPENDSENTRY_READ_TOKENS is set (docs/operations/security.md)
ENV SPENDSENTRY_DATA_DIR=/data SPENDSENTRY_WEB_HOST=0.0.0.0
EXPOSE 6066
CMD ["spendsentry", "worker"]

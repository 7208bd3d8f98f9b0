# crm-sync service image: one image for the migration job, workers, the scheduler and the dashboard.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY sync_service ./sync_service
COPY crm_store ./crm_store
COPY workers ./workers
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /app crm \
    && mkdir -p /data && chown crm /data

USER crm
ENV CRM_DATA_DIR=/data
VOLUME ["/data"]
ENTRYPOINT ["crm-sync"]
CMD ["status"]

# One image for every role: worker, scheduler (beat), HTTP API, Flower, and the
# demo API. The role is the command; configuration comes from PMRUNNER_*
# environment variables only (see README, "Docker").
#
#   docker build -t pmrunner .
#   docker run --rm -e PMRUNNER_REDIS_URL=redis://:pw@redis:6379/0 pmrunner \
#       celery -A worker worker -Q net.a -P threads -c 32 -n worker-a@%h

# --- build: npm fetches Postman's sandbox bundle once, into the wheel ---------------
FROM python:3.11-slim AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends npm \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# --- run: no npm, no compiler, a non-root user ---------------------------------------
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PMRUNNER_DATA_DIR=/var/lib/pmrunner
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl \
    && rm -rf /wheels \
    && useradd --system --uid 10001 --create-home --home-dir /var/lib/pmrunner pmrunner
# The sandbox bundle is part of the installed package: fail the build if it is not.
RUN python -c "import pmrunner; from runtime.sandbox.bundle import installed_bundle; installed_bundle()"
USER pmrunner
WORKDIR /var/lib/pmrunner
EXPOSE 8080 5555 9100
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
    CMD ["pmrunner", "health"]
CMD ["pmrunner", "--help"]

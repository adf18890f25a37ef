# A small image running one eraftkv node; pass options after the image name,
# e.g. docker run -p 6379:6379 eraft-twisted --resp 0.0.0.0:6379
FROM python:3.11-slim
WORKDIR /srv/eraft
COPY . /srv/eraft
RUN pip install --no-cache-dir /srv/eraft
EXPOSE 6379 8088
ENTRYPOINT ["twistd", "-n", "--pidfile=", "eraftkv", "--data", "/data"]

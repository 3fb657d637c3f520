"""The service under test: real Celery workers (each in a memory container), Redis and RabbitMQ, the faults
injected into them, the load and soak runs, job timelines, the OOM reproduction and pool capacity. Uses
:mod:`bench.measuring`."""

"""python -m bench service-load --quick --broker rabbitmq: the same jobs and faults on a private RabbitMQ node
(a file of its own, so that the two brokers' load runs go to both pytest workers)."""

from test_service_load import check_no_job_lost, service_load


def test_quick_load_on_rabbitmq_loses_no_job(tmp_path):
    out = tmp_path / "load"
    check_no_job_lost(service_load(out, "--quick", "--broker", "rabbitmq"), out, "rabbitmq")

"""promstatsd's live Airflow check: a DAG whose task always fails (no retries),
so failed task instances and failed DAG runs are counted too."""

from airflow.sdk import dag, task


@dag(dag_id="e2e_failing", schedule=None, catchup=False, max_active_runs=4, tags=["promstatsd-e2e"])
def e2e_failing():
    @task(retries=0)
    def always_fails():
        raise RuntimeError("fails on purpose")

    always_fails()


e2e_failing()

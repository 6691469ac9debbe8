import asyncio

from whatsapp_core.ordered import OrderedWorkers


async def test_jobs_of_one_key_run_in_order_and_keys_interleave():
    log = []

    async def handle(job):
        key, n = job
        await asyncio.sleep(0.01 if key == "slow" else 0)
        log.append(job)

    workers = OrderedWorkers("t", handle, key=lambda job: job[0])
    workers.submit([("slow", 1), ("fast", 1), ("slow", 2), ("fast", 2)])
    await workers.wait_idle()
    assert [n for key, n in log if key == "slow"] == [1, 2]
    assert log.index(("fast", 2)) < log.index(("slow", 1))


async def test_failing_job_does_not_stop_the_key(caplog):
    done = []

    async def handle(job):
        if job == "bad":
            raise RuntimeError("boom")
        done.append(job)

    workers = OrderedWorkers("t", handle, key=lambda _job: "k")
    workers.submit(["bad", "good"])
    await workers.wait_idle()
    assert done == ["good"]
    assert "job failed" in caplog.text

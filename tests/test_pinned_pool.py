"""The production client's pool pins one connection to each thread (store/pinned_pool.py):
a thread reuses its connection, threads never share one, a thread's nested use gets another,
an ended thread's connection serves the next one, and a connection the server closed is
opened again before it is used; commands take the direct path (store/direct_client.py).
On a real redis-server: CLIENT ID names the connection."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterator

import pytest
import redis

from oidc_link.store.connection import connect
from oidc_link.store.direct_client import DirectRedis, DirectScript
from oidc_link.store.pinned_pool import PinnedConnectionPool


@pytest.fixture
def client(redis_server_url: str) -> Iterator[redis.Redis]:
    client = connect(redis_server_url)
    yield client
    client.close()


@pytest.fixture
def observer(redis_server_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_server_url, decode_responses=True) as observer:
        yield observer


def connection_id(connection: redis.connection.AbstractConnection) -> int:
    connection.send_command("CLIENT", "ID")
    return int(connection.read_response())


def test_the_production_client_is_built_on_the_pinned_pool(client: redis.Redis) -> None:
    assert isinstance(client.connection_pool, PinnedConnectionPool)


def test_a_thread_sends_its_commands_and_pipelines_over_one_connection(
    client: redis.Redis,
) -> None:
    first = client.client_id()
    client.set("pinned:a", "1")
    pipeline = client.pipeline(transaction=True)
    pipeline.client_id()
    pipeline.get("pinned:a")

    assert pipeline.execute() == [first, "1"]
    assert client.client_id() == first


def test_threads_each_get_a_connection_of_their_own_and_never_see_each_others_replies(
    client: redis.Redis,
) -> None:
    threads_count, rounds = 8, 300
    ids: dict[int, int] = {}
    wrong: list[str] = []
    start = threading.Barrier(threads_count)

    def work(number: int) -> None:
        start.wait()
        ids[number] = client.client_id()
        # No thread ends (handing its connection on) before every thread has its own.
        start.wait()
        for turn in range(rounds):
            value = f"{number}:{turn}"
            client.set(f"pinned:thread:{number}", value)
            if client.get(f"pinned:thread:{number}") != value:
                wrong.append(value)
            client.incr("pinned:counter")

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads_count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert wrong == []
    assert client.get("pinned:counter") == str(threads_count * rounds)
    assert len(set(ids.values())) == threads_count
    client.delete("pinned:counter")


def test_a_command_sent_while_the_thread_holds_its_connection_goes_over_another(
    client: redis.Redis,
) -> None:
    pinned = client.client_id()
    held = client.connection_pool.get_connection()
    try:
        assert connection_id(held) == pinned
        assert client.client_id() != pinned
    finally:
        client.connection_pool.release(held)

    assert client.client_id() == pinned


def test_an_ended_threads_connection_serves_the_next_thread(
    client: redis.Redis, observer: redis.Redis
) -> None:
    client.ping()
    before = observer.info("clients")["connected_clients"]
    ids = []
    for _ in range(20):
        worker = threading.Thread(target=lambda: ids.append(client.client_id()))
        worker.start()
        worker.join()

    # One connection more at most (the first thread's, then reused), not one per thread.
    assert observer.info("clients")["connected_clients"] <= before + 1
    assert len(set(ids)) == 1


def test_a_pinned_connection_the_server_closed_is_opened_again_before_the_next_command(
    client: redis.Redis, observer: redis.Redis
) -> None:
    first = client.client_id()
    assert observer.client_kill_filter(_id=first) == 1

    assert client.set("pinned:after-kill", "1") is True
    assert client.client_id() != first


def _child_connection_id(client: redis.Redis, answers: multiprocessing.Queue) -> None:
    answers.put(client.client_id())


def test_a_forked_process_opens_a_connection_of_its_own(client: redis.Redis) -> None:
    parent = client.client_id()
    fork = multiprocessing.get_context("fork")
    answers = fork.Queue()
    child = fork.Process(target=_child_connection_id, args=(client, answers))
    child.start()
    child_id = answers.get(timeout=30)
    child.join(timeout=30)

    assert child_id != parent
    assert client.client_id() == parent


def test_the_production_client_sends_commands_by_the_direct_path(client: redis.Redis) -> None:
    assert isinstance(client, DirectRedis)
    assert isinstance(client.register_script("return 1"), DirectScript)
    assert client.set("direct:a", "1", ex=60) is True  # redis-py's answer callbacks still run
    assert client.get("direct:a") == "1"
    assert client.ttl("direct:a") > 0


def test_a_pipeline_on_a_pinned_connection_the_server_closed_is_sent_again(
    client: redis.Redis, observer: redis.Redis
) -> None:
    first = client.client_id()
    assert observer.client_kill_filter(_id=first) == 1
    pipeline = client.pipeline(transaction=False)
    pipeline.incr("direct:count")
    pipeline.client_id()

    count, now = pipeline.execute()

    assert count == 1  # sent once: the closed connection never delivered it
    assert now != first


def test_a_refusal_by_the_server_is_raised_and_the_connection_stays(client: redis.Redis) -> None:
    first = client.client_id()
    client.set("direct:text", "a")

    with pytest.raises(redis.ResponseError):
        client.incr("direct:text")

    assert client.client_id() == first


def test_a_script_the_server_forgot_is_loaded_again_through_the_direct_path(
    client: redis.Redis,
) -> None:
    script = client.register_script("return redis.call('INCR', KEYS[1])")
    assert script(keys=["direct:scripted"]) == 1
    client.script_flush()

    assert script(keys=["direct:scripted"]) == 2


def test_a_plain_pipeline_answers_in_order_with_a_refusal_in_its_place_or_raised(
    client: redis.Redis,
) -> None:
    first = client.client_id()
    client.set("direct:word", "a")
    pipeline = client.pipeline(transaction=False)
    pipeline.set("direct:n", "1", ex=60)
    pipeline.incr("direct:word")
    pipeline.incr("direct:n")

    done, refused, counted = pipeline.execute(raise_on_error=False)

    assert (done, counted) == (True, 2)
    assert isinstance(refused, redis.ResponseError)
    pipeline.incr("direct:word")
    with pytest.raises(redis.ResponseError, match="Command # 1"):
        pipeline.execute()
    assert client.client_id() == first


def test_a_command_that_fails_before_an_answer_leaves_the_next_one_a_clean_connection(
    client: redis.Redis,
) -> None:
    first = client.client_id()

    with pytest.raises(redis.DataError):
        client.set("direct:bad", {"not": "a value"})  # type: ignore[arg-type]

    assert client.set("direct:good", "1") is True
    assert client.get("direct:good") == "1"
    assert client.client_id() != first  # dropped rather than risk an unread answer

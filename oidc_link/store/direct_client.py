"""redis-py's client with a shorter path for one command on a connection pinned to the thread
(pinned_pool.py): send, read, parse, and redis-py's own path only when that fails. Knows no
command and no key; connection.py builds clients of this class.
"""

from __future__ import annotations

from typing import Any

import redis
from redis._parsers.hiredis import NOT_ENOUGH_DATA
from redis.commands.core import Script
from redis.connection import AbstractConnection
from redis.exceptions import NoScriptError

from oidc_link.store.plain_socket import drop, plain, read, send, settled


class DirectRedis(redis.Redis):
    """``redis.Redis`` whose commands go straight to the connection the pool hands out.

    redis-py wraps every command in closures, a retry loop, its OpenTelemetry-style metrics
    of each command's duration (recorded only when configured, but computed for each), and
    a check for the HIMPORT command: about a third of its Python work per command. Here a
    command is sent and its answer read directly; the first ConnectionError (a connection
    the server closed, a Sentinel master that is now a replica) disconnects and hands the
    command to redis-py's path, whose retries, backoff and reconnection run as before. That
    first try takes the place of the pool's check that a connection is still open before
    each command (pinned_pool.py skips it while the connection is in use), which reconnected
    at once as well. A timeout or a refusal is raised as redis-py raises it: a command that
    may have run is never sent again.
    """

    def execute_command(self, *args: Any, **options: Any) -> Any:
        # In place of redis-py's, which only calls _execute_command: one call fewer.
        if self.connection is not None or self._single_connection_client:
            return super()._execute_command(*args, **options)
        pool = self.connection_pool
        connection = pool.get_connection()
        try:
            if plain(connection) and (not options or (len(options) == 1 and "keys" in options)):
                # The socket and hiredis directly (plain_socket.py), the answer through its
                # response callback, as _answer does.
                send(connection, connection._command_packer.pack(*args))
                response = read(connection)
                callback = self.response_callbacks.get(args[0])
                return response if callback is None else callback(response)
            connection.send_command(*args, **options)
            return _answer(self, connection, args[0], options)
        except redis.ConnectionError:
            # Not sent or no answer, the socket broken: redis-py's path retries on a new one.
            connection.disconnect()
        except redis.ResponseError:
            raise  # Redis's answer, read in full: the connection serves the next command
        except BaseException:
            # Anything else (an interrupt between sending and reading) may leave an answer
            # unread, which the pool no longer polls for while the connection is in use.
            connection.disconnect()
            raise
        finally:
            # As redis-py does after each command: a connection marked to reconnect (a
            # server's maintenance notice) connects again before it serves the next.
            if connection.should_reconnect():
                connection.disconnect()
                connection.connect()
            pool.release(connection)
        return super()._execute_command(*args, **options)

    def register_script(self, script: Any) -> Script:
        return DirectScript(self, script)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> redis.client.Pipeline:
        return DirectPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )


class DirectPipeline(redis.client.Pipeline):
    """redis-py's pipeline, a plain one (no MULTI, no WATCH, no Script queued) sent as
    ``DirectRedis`` sends a command: packed, written and its answers read directly, and
    handed to redis-py's path (retries, backoff) after a first ConnectionError. Skips
    redis-py's per-pipeline HIMPORT bookkeeping: this project never sends HIMPORT."""

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        # As redis-py's: a WATCH (or any command while watching) runs at once, any other
        # command is queued; here queued without a second call.
        if (self.watching or args[0] == "WATCH") and not self.explicit_transaction:
            return self.immediate_execute_command(*args, **kwargs)
        self.command_stack.append((args, kwargs))
        return self

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        stack = self.command_stack
        if (
            self.transaction
            or self.explicit_transaction
            or self.watching
            or self.scripts
            or self.connection is not None
            or not stack
        ):
            return super().execute(raise_on_error)
        connection = self.connection = self.connection_pool.get_connection()
        try:
            responses = self._send_and_read(connection, stack, raise_on_error)
        except redis.ConnectionError:
            connection.disconnect()
            return super().execute(raise_on_error)  # sends it again; resets at the end
        except BaseException as error:
            if not isinstance(error, redis.ResponseError):  # all answers read for those
                connection.disconnect()
            self.reset()
            raise
        if connection.should_reconnect():
            connection.disconnect()
        self.reset()
        return responses

    def _send_and_read(
        self, connection: Any, commands: list[Any], raise_on_error: bool
    ) -> list[Any]:
        if plain(connection):
            return self._send_and_read_plain(connection, commands, raise_on_error)
        connection.send_packed_command(connection.pack_commands([args for args, _ in commands]))
        responses: list[Any] = []
        try:
            for args, options in commands:
                try:
                    # The first answer is read from the socket; the later ones are
                    # usually in hiredis's buffer already (read_reply).
                    later = bool(responses)
                    responses.append(_answer(self, connection, args[0], options, later))
                except redis.ResponseError as error:
                    responses.append(error)
        except BaseException:
            # The rest of the answers are still on the socket: it serves no one else.
            connection.disconnect()
            raise
        if raise_on_error:
            self.raise_first_error(commands, responses)
        return responses

    def _send_and_read_plain(
        self, connection: Any, commands: list[Any], raise_on_error: bool
    ) -> list[Any]:
        """``_send_and_read`` on a plain connection: the commands packed into one write and
        their answers read by plain_socket.py, each through its callback as ``_answer``
        puts it."""
        pack = connection._command_packer.pack
        send(connection, [b"".join([piece for args, _ in commands for piece in pack(*args)])])
        callbacks = self.response_callbacks
        responses: list[Any] = []
        failed = False
        try:
            for args, options in commands:
                try:
                    if not options or (len(options) == 1 and "keys" in options):
                        response = read(connection)
                        callback = callbacks.get(args[0])
                        if callback is not None:
                            response = callback(response)
                    else:
                        response = self.parse_response(connection, args[0], **options)
                except redis.ResponseError as error:
                    response = error
                    failed = True
                responses.append(response)
        except BaseException:
            # The rest of the answers are still on the socket: it serves no one else.
            connection.disconnect()
            raise
        if raise_on_error and failed:
            self.raise_first_error(commands, responses)
        return responses


def _answer(
    client: Any,
    connection: Any,
    command: str,
    options: dict[str, Any],
    later: bool = False,
) -> Any:
    """The reply to ``command``, read (``read_reply`` for a pipeline's ``later`` answers,
    which hiredis may hold already) and put through its response callback as redis-py's
    ``parse_response`` does (and a pipeline's, which adds only WATCH bookkeeping: a plain
    pipeline never watches), in one call rather than two or three. A command with options
    beyond ``keys`` (which only redis-py's client-side cache reads), or a connection that
    fell back to RESP2, takes redis-py's own path."""
    if (not options or (len(options) == 1 and "keys" in options)) and (
        not connection._resp2_fallback
    ):
        response = read_reply(connection) if later else connection.read_response()
        callback = client.response_callbacks.get(command)
        return response if callback is None else callback(response)
    return client.parse_response(connection, command, **options)


def read_reply(connection: Any) -> Any:
    """``connection.read_response()``, taking a reply hiredis has already read whole (a
    pipeline's second and later replies) straight from its reader: without redis-py's
    three calls around it and the f-string of the server's address it builds per reply.

    Only for redis-py's own ``read_response`` (not Sentinel's, which turns READONLY into a
    failover) on a hiredis parser. A reply not yet read goes to redis-py (``gets`` took
    nothing). One taken that is not a plain answer is handled as redis-py handles it: an
    error reply raised; a ConnectionError reply (LOADING) or a broken reply (protocol,
    decoding) drops the connection and is raised; a push notice (a maintenance notice)
    goes to the parser's handler, whose socket errors become redis-py's, then the answer
    is read. tests/test_direct_reply.py compares the two on each of these.
    """
    parser = connection._parser
    reader = getattr(parser, "_reader", None)
    if reader is None or type(connection).read_response is not AbstractConnection.read_response:
        return connection.read_response()
    try:
        response = reader.gets()
    except BaseException as error:  # a broken reply: nothing after it can be read
        drop(connection, error)
        raise
    if response is NOT_ENOUGH_DATA:
        return connection.read_response()
    return settled(connection, parser, response)


class DirectScript(Script):
    """redis-py's Script, called on the client that registered it: EVALSHA straight to that
    client's ``execute_command`` (redis-py goes through ``evalsha``, rebuilds the keys and
    arguments as tuples and imports the pipeline classes to test for them, at every call),
    and on NOSCRIPT (a new or restarted server, a failover) SCRIPT LOAD and EVALSHA again,
    as redis-py does. Called with another client (a pipeline), it is redis-py's own."""

    def __call__(self, keys: Any = None, args: Any = None, client: Any = None) -> Any:
        if client is not None:
            return super().__call__(keys, args, client)
        keys = keys or ()
        args = args or ()
        client = self.registered_client
        try:
            return client.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:
            self.sha = client.script_load(self.script)
            return client.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)

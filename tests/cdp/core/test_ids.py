"""new_uuid4: real version-4 UUIDs, unique, and never shared with a forked child."""

import os
import uuid

from cdp.core.ids import new_uuid4


def test_ids_are_version_4_uuids_like_the_stdlib_s():
    for _ in range(600):  # more than one draw
        value = new_uuid4()
        assert isinstance(value, uuid.UUID)
        assert value.version == 4 and value.variant == uuid.RFC_4122
        twin = uuid.UUID(str(value))
        assert value == twin and hash(value) == hash(twin) and value.hex == twin.hex


def test_ids_do_not_repeat():
    ids = {new_uuid4() for _ in range(20_000)}
    assert len(ids) == 20_000


def test_a_forked_child_does_not_hand_out_the_parents_next_ids():
    new_uuid4()  # the parent now holds drawn, unused bytes
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:
        os.write(writing, new_uuid4().bytes)
        os._exit(0)
    os.close(writing)
    os.waitpid(child, 0)
    childs = os.read(reading, 16)
    os.close(reading)
    assert childs != new_uuid4().bytes

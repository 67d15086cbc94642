"""Reads scalars back from TensorBoard event files without TensorFlow (test helper)."""

import glob
import os
import struct
from collections import defaultdict

from tensorboardX.proto import event_pb2


def events(logdir: str):
  for path in sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*"))):
    with open(path, "rb") as f:
      data = f.read()
    pos = 0
    while pos < len(data):
      (length,) = struct.unpack("<Q", data[pos : pos + 8])
      pos += 12  # length + its crc
      event = event_pb2.Event()
      event.ParseFromString(data[pos : pos + length])
      pos += length + 4  # payload + its crc
      yield event


def read_scalars(logdir: str) -> dict:
  out = defaultdict(list)
  for event in events(logdir):
    for value in event.summary.value:
      if value.HasField("simple_value"):
        out[value.tag].append((event.step, value.simple_value))
  return dict(out)

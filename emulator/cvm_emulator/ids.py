"""The shapes of the cloud's resource ids: every action module checks ids against these."""

from __future__ import annotations

import re

IMAGE_ID_RE = re.compile(r"^img-[a-z0-9]{8}$")
INSTANCE_ID_RE = re.compile(r"^ins-[a-z0-9]{8}$")
KEY_ID_RE = re.compile(r"^skey-[a-z0-9]{8}$")

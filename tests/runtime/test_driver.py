"""The driver's pacing of looks at a resource the cloud is working on (no I/O: a stub API server)."""

from __future__ import annotations

from typing import Any, cast

from cvm_operator.config import OperatorConfig
from cvm_operator.controller import Controller
from cvm_operator.reconcilers.base import FIRST_LOOK, Context, Driver, Observation
from cvm_operator.reconcilers.image import ImageReconciler
from cvm_operator.reconcilers.runtime import Runtime
from tests.operator import import_image_body

FINALIZER = "cvm.operator.dev/finalizer"


class _Kube:
    async def patch_metadata(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def patch_status(self, *args: Any) -> None:
        return None


class _Importing(ImageReconciler):
    """An image the cloud is still importing."""

    async def observe(self, ctx: Context[Any]) -> Observation[Any]:
        return Observation(exists=True, up_to_date=True, ready=False, cloud_state="IMPORTING", reason="Importing")


def _runtime() -> Runtime:
    config = OperatorConfig(endpoint=None, default_credentials=None, progress_interval=5.0)
    runtime = Runtime(config, cast(Any, _Kube()), cast(Any, None), lambda *args: None)

    async def connect(*args: Any) -> Any:
        return None

    runtime.connect = connect  # type: ignore[method-assign,assignment]
    return runtime


def _image(resource_version: str, **meta: Any) -> dict[str, Any]:
    body = {**import_image_body("golden", "https://example.com/disk.qcow2"), "apiVersion": "cvm.operator.dev/v1alpha1"}
    body["metadata"] |= {"namespace": "default", "uid": "u-1", "resourceVersion": resource_version, "generation": 1}
    body["metadata"] |= meta
    return body


async def _delay_of_a_pass(status: dict[str, Any]) -> float:
    runtime = _runtime()
    body = _image("7", finalizers=[FINALIZER])
    body["status"] = status
    return await Driver(runtime).reconcile(_Importing(runtime), body)


async def test_the_first_look_at_a_resource_in_progress_comes_soon_and_later_ones_at_the_progress_interval() -> None:
    assert await _delay_of_a_pass({}) == FIRST_LOOK  # first sight (made by another object, say)
    assert await _delay_of_a_pass({"cloudState": "IMPORTING"}) == 5.0


def test_a_late_watch_event_older_than_our_own_write_runs_no_pass() -> None:
    runtime = Runtime(
        OperatorConfig(endpoint=None, default_credentials=None), cast(Any, _Kube()), cast(Any, None), print
    )
    controller = Controller(runtime, {"Image": ImageReconciler(runtime)})
    created = {
        **import_image_body("golden", "https://example.com/disk.qcow2"),
        "apiVersion": "cvm.operator.dev/v1alpha1",
    }
    created["metadata"] |= {"namespace": "default", "uid": "u-1", "resourceVersion": "7", "generation": 1}
    controller.observe("ADDED", created)
    key = controller.queue.pop_ready()  # the first pass, under way
    assert key is not None
    held = _image("8", finalizers=[FINALIZER])
    runtime.bodies.remember(held)  # the answer to its PATCH of the finalizer
    controller.queue.done(key)
    controller.observe("MODIFIED", created)  # the watch catching up: an older version, without the finalizer
    assert len(controller.queue) == 0
    controller.observe("MODIFIED", held)  # its own write, by watch: nothing new to act on
    assert len(controller.queue) == 0
    controller.observe("MODIFIED", _image("9", finalizers=[]))
    assert len(controller.queue) == 1  # someone removed the finalizer: a pass puts it back

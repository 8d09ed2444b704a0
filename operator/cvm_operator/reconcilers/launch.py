"""The RunInstances settings of a spec: shared by the Instance reconciler and the InstanceSet's batched launches."""

from __future__ import annotations

from cvm_operator.api.instance import LaunchSettings
from cvm_operator.cloud import DataDisk, LaunchOptions
from cvm_operator.reconcilers.references import user_data
from cvm_operator.reconcilers.runtime import Runtime


def launch_options(spec: LaunchSettings, encoded_user_data: str | None) -> LaunchOptions:
    """The RunInstances settings of a spec (an Instance's, or an InstanceSet template's)."""
    network, internet, spot, prepaid = spec.network, spec.internet, spec.spot, spec.prepaid
    return LaunchOptions(
        vpc_id=network.vpc_id if network else None,
        subnet_id=network.subnet_id if network else None,
        private_ip=network.private_ip_address if network else None,
        security_group_ids=tuple(network.security_group_ids or ()) if network else (),
        public_ip=internet.public_ip if internet else None,
        internet_charge_type=internet.charge_type if internet else None,
        max_bandwidth_out=internet.max_bandwidth_out_mbps if internet else None,
        data_disks=tuple(
            DataDisk(disk.disk_type, disk.size_gb, disk.delete_with_instance) for disk in spec.data_disks or ()
        ),
        user_data=encoded_user_data,
        charge_type=spec.charge_type,
        spot_max_price=spot.max_price if spot else None,
        prepaid_period=prepaid.period if prepaid else None,
        prepaid_renew_flag=prepaid.renew_flag if prepaid else None,
        project_id=spec.project_id,
        disable_api_termination=spec.disable_api_termination or None,
        cam_role_name=spec.cam_role_name,
    )


async def read_launch_options(
    runtime: Runtime, namespace: str, spec: LaunchSettings, field: str = "spec"
) -> LaunchOptions:
    """:func:`launch_options`, with the user data read from the Secret or ConfigMap the spec names."""
    encoded = await user_data(runtime, namespace, spec.user_data, f"{field}.userData") if spec.user_data else None
    return launch_options(spec, encoded)

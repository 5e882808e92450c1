"""patches/placement.py: GetSpotPlacementScores as AWS answers it, with the
scores a test sets per zone, on a live emulator reached with boto3.

.venv/bin/python -m unittest discover -s tests/emulator
"""

from __future__ import annotations

import threading
import unittest
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

import iam  # noqa: F401 - first: it puts infra/ on the path

REGION = "eu-west-1"
TYPES = ["m6i.large", "m5.large", "m5a.large"]
_server: Any = None
_next = iter(range(200000, 300000))


def setUpModule() -> None:
    global _server
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    import emulator
    import patches
    import services

    patches.apply()
    services.apply()
    app = emulator.Emulator(DomainDispatcherApplication(create_backend_app))
    _server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=_server.serve_forever, daemon=True).start()


def tearDownModule() -> None:
    _server.shutdown()


class Account:
    def __init__(self) -> None:
        self.id = f"{next(_next):012d}"

    def ec2(self, identity: str = "EMULATOR") -> Any:
        return boto3.client(
            "ec2", region_name=REGION, endpoint_url=f"http://127.0.0.1:{_server.server_port}",
            aws_access_key_id=f"LB{self.id}{identity}", aws_secret_access_key="secret",
            config=Config(retries={"max_attempts": 1}),
        )

    def configure(self, values: dict[str, Any]) -> None:
        import patches

        patches.configure(self.id, values)

    def zones(self, **request: Any) -> list[tuple[str, int]]:
        out = self.ec2().get_spot_placement_scores(
            TargetCapacity=1, SingleAvailabilityZone=True, RegionNames=[REGION], **request)
        return [(s["AvailabilityZoneId"], s["Score"]) for s in out["SpotPlacementScores"]]


def error(call: Any) -> tuple[str, str]:
    try:
        call()
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["Error"].get("Message", "")
    raise AssertionError("the call succeeded")


class Scores(unittest.TestCase):
    def test_each_zone_of_the_region_is_scored_best_first_with_the_scores_set(self) -> None:
        a = Account()
        # eu-west-1a is euw1-az3 in moto's zone data; a zone by name or by id.
        a.configure({"spot_placement_scores": {"eu-west-1a": 2, "euw1-az1": 9}})
        out = a.ec2().get_spot_placement_scores(
            InstanceTypes=TYPES, TargetCapacity=1, SingleAvailabilityZone=True, RegionNames=[REGION])
        self.assertEqual(
            out["SpotPlacementScores"],
            [{"Region": REGION, "AvailabilityZoneId": "euw1-az2", "Score": 10},
             {"Region": REGION, "AvailabilityZoneId": "euw1-az1", "Score": 9},
             {"Region": REGION, "AvailabilityZoneId": "euw1-az3", "Score": 2}],
        )
        self.assertNotIn("NextToken", out)

    def test_without_single_zone_a_region_scores_as_its_best_zone(self) -> None:
        a = Account()
        a.configure({"spot_placement_default_score": 3, "spot_placement_scores": {"eu-west-1b": 7}})
        out = a.ec2().get_spot_placement_scores(
            InstanceTypes=TYPES, TargetCapacity=1, RegionNames=[REGION, "us-east-1"])
        self.assertEqual(
            out["SpotPlacementScores"], [{"Region": REGION, "Score": 7}, {"Region": "us-east-1", "Score": 3}])

    def test_without_a_region_filter_the_top_ten_regions(self) -> None:
        a = Account()
        a.configure({"spot_placement_default_score": 4, "spot_placement_scores": {"ap-south-1a": 8}})
        scores = a.ec2().get_spot_placement_scores(InstanceTypes=TYPES, TargetCapacity=5)["SpotPlacementScores"]
        self.assertEqual(len(scores), 10)
        self.assertEqual(scores[0], {"Region": "ap-south-1", "Score": 8})
        self.assertEqual({s["Score"] for s in scores[1:]}, {4})

    def test_fewer_than_three_instance_types_score_low(self) -> None:
        a = Account()
        self.assertEqual({s for _, s in a.zones(InstanceTypes=["m6i.large", "m6i.large", "m5.large"])}, {1})
        self.assertEqual({s for _, s in a.zones(InstanceTypes=TYPES)}, {10})

    def test_attributes_are_resolved_to_instance_types(self) -> None:
        a = Account()
        wide = {"ArchitectureTypes": ["x86_64"], "InstanceRequirements": {"VCpuCount": {"Min": 2, "Max": 4},
                                                                             "MemoryMiB": {"Min": 4096}}}
        self.assertEqual({s for _, s in a.zones(InstanceRequirementsWithMetadata=wide)}, {10})
        # No instance type has 3 to 3 vCPUs and 1 MiB at most: nothing to score well.
        narrow = {"InstanceRequirements": {"VCpuCount": {"Min": 3, "Max": 3}, "MemoryMiB": {"Min": 0, "Max": 1}}}
        self.assertEqual({s for _, s in a.zones(InstanceRequirementsWithMetadata=narrow)}, {1})


class Refusals(unittest.TestCase):
    def test_instance_types_and_attributes_exclude_each_other(self) -> None:
        a = Account()
        requirements = {"InstanceRequirements": {"VCpuCount": {"Min": 2}, "MemoryMiB": {"Min": 4096}}}
        code, _ = error(lambda: a.zones(InstanceTypes=TYPES, InstanceRequirementsWithMetadata=requirements))
        self.assertEqual(code, "InvalidParameterCombination")
        self.assertEqual(error(lambda: a.zones())[0], "InvalidParameterCombination")

    def test_the_model_refuses_what_is_out_of_range(self) -> None:
        a = Account()
        # botocore's client validates too: without it, strict.py answers.
        client = boto3.client(
            "ec2", region_name=REGION, endpoint_url=f"http://127.0.0.1:{_server.server_port}",
            aws_access_key_id=f"LB{a.id}EMULATOR", aws_secret_access_key="secret",
            config=Config(retries={"max_attempts": 1}, parameter_validation=False),
        )
        code, message = error(lambda: client.get_spot_placement_scores(InstanceTypes=TYPES, TargetCapacity=0))
        self.assertEqual(code, "InvalidParameterValue", message)
        self.assertIn("Value (0) for parameter targetCapacity is invalid", message)
        regions = [f"r-{i}" for i in range(11)]
        code, message = error(lambda: client.get_spot_placement_scores(
            InstanceTypes=TYPES, TargetCapacity=1, RegionNames=regions))
        self.assertEqual(code, "InvalidParameterValue", message)
        self.assertIn("for parameter regionName is invalid. It must have length less than or equal to 10", message)

    def test_an_unknown_region_is_named(self) -> None:
        a = Account()
        code, message = error(lambda: a.ec2().get_spot_placement_scores(
            InstanceTypes=TYPES, TargetCapacity=1, RegionNames=["eu-nowhere-1"]))
        self.assertEqual(code, "InvalidParameterValue")
        self.assertIn("eu-nowhere-1", message)

    def test_new_configurations_past_the_daily_limit_are_refused_known_ones_answered(self) -> None:
        a = Account()
        a.configure({"spot_placement_configurations": 2})
        ec2 = a.ec2()
        ec2.get_spot_placement_scores(InstanceTypes=TYPES, TargetCapacity=1)
        # The same configuration asked about per zone, in another order: not new.
        ec2.get_spot_placement_scores(InstanceTypes=list(reversed(TYPES)), TargetCapacity=1,
                                      SingleAvailabilityZone=True, RegionNames=[REGION])
        ec2.get_spot_placement_scores(InstanceTypes=TYPES, TargetCapacity=2)
        code, message = error(lambda: ec2.get_spot_placement_scores(InstanceTypes=TYPES, TargetCapacity=3))
        self.assertEqual(code, "MaxConfigLimitExceeded")
        self.assertIn("retry configurations that you used within the last 24 hours", message)
        ec2.get_spot_placement_scores(InstanceTypes=TYPES, TargetCapacity=2, TargetCapacityUnitType="units")
        # Another account has its own limit.
        Account().ec2().get_spot_placement_scores(InstanceTypes=TYPES, TargetCapacity=3)

    def test_a_dry_run_says_it_would_have_succeeded(self) -> None:
        code, _ = error(lambda: Account().ec2().get_spot_placement_scores(
            InstanceTypes=TYPES, TargetCapacity=1, DryRun=True))
        self.assertEqual(code, "DryRunOperation")

    def test_bad_scores_are_refused_by_the_control_api(self) -> None:
        a = Account()
        with self.assertRaisesRegex(ValueError, "no Availability Zone 'eu-west-1z'"):
            a.configure({"spot_placement_scores": {"eu-west-1z": 5}})
        with self.assertRaisesRegex(ValueError, "integer from 1 to 10, not 11"):
            a.configure({"spot_placement_scores": {"eu-west-1a": 11}})


class Authorization(unittest.TestCase):
    def test_no_lifeboat_function_may_ask_for_scores_yet(self) -> None:
        a = Account()
        code, message = error(lambda: a.ec2("INTERRUPTIONHANDLER").get_spot_placement_scores(
            InstanceTypes=TYPES, TargetCapacity=1))
        self.assertEqual(code, "UnauthorizedOperation")
        self.assertIn("ec2:GetSpotPlacementScores on resource: *", message)


if __name__ == "__main__":
    unittest.main()

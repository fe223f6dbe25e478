"""`edge-et profiles` and `plan --device-profile` on the tiny bundle: the profile's budget is
used and named, every profile gets a decision, and mistakes are one line."""

import json

import pytest

from edge_et.bundle.manifest import Bundle
from edge_et.errors import InputError
from edge_et.memory.profiles import load_profiles
from edge_et.runtime.plan import plan_bundle
from tests.cli.test_cli_errors import assert_one_line_error, edge_et


def test_plan_bundle_for_every_profile_uses_its_budget(tiny_bundle):
    bundle = Bundle.load(tiny_bundle)
    for name, profile in load_profiles().items():
        result = plan_bundle(bundle, device_profile=name, baseline=50 * 2**20)
        assert result.budget.bytes == profile.app_memory_bytes
        # The tiny bundle's two models take a few MiB: they fit together in every profile.
        assert result.decision == "co-resident", (name, result.reason)
        assert result.reason.startswith("both models fit loaded together"), result.reason
    with pytest.raises(InputError, match="give one"):
        plan_bundle(bundle, device_profile="galaxy-s22", mem_budget="1GB", baseline=0)


def test_plan_and_profiles_commands(tiny_bundle):
    done = edge_et(
        "plan", "--bundle", str(tiny_bundle), "--device-profile", "iphone-15-pro", "--json"
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["device_profile"] == "iphone-15-pro" and data["budget_bytes"] == 3 * 10**9
    assert data["budget_source"].startswith("device profile iphone-15-pro")
    listed = json.loads(edge_et("profiles", "--json").stdout)
    assert listed["galaxy-s22"]["published_decode"][0]["tok_s"] == 59
    listed_by_plan = edge_et("plan", "--device-profile", "list")  # no --bundle needed to list
    assert listed_by_plan.returncode == 0 and "galaxy-s22" in listed_by_plan.stdout
    assert_one_line_error(
        edge_et("plan", "--bundle", str(tiny_bundle), "--device-profile", "nokia"),
        "unknown device profile 'nokia'",
    )

"""`crm-sync demo` runs the Corporate sale for the sample opportunities and shows what advanced by itself."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from sync_service.cli.main import app


def test_the_demo_shows_steps_completed_by_synced_items(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--dir", str(tmp_path / "demo")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Corporate sale started for 6 opportunities at their current stage" in out
    process_part = out.split("sales processes (steps completed by synced mail and meetings)", 1)[1]
    # The sample mail says which steps it satisfies (sync_service/demo/data/README.md).
    assert "automatically: Call → Interest confirmed (activity" in process_part  # Umbrella's intro call
    assert "automatically: Submit the proposal → Submitted (activity" in process_part  # Globex's proposal PDF
    assert "automatically: Conduct presentation → Held (activity" in process_part  # Acme's presentation
    assert "[3] Globex support renewal: Negotiations" in process_part

    demo = tmp_path / "demo"
    env = {"CRM_DATABASE_URL": f"sqlite:///{demo / 'demo.db'}", "CRM_DATA_DIR": str(demo / "data")}
    exported = CliRunner().invoke(app, ["export", "activities", "--format", "json"], env=env)
    assert exported.exit_code == 0, exported.output
    activities = json.loads(exported.stdout)
    steps = [a for a in activities if a["origin"] == "process"]
    assert any(a["account"] for a in steps)  # steps of the opportunities' processes, with their accounts
    assert all(a["account"] in a["accounts"] for a in activities if a["account"])

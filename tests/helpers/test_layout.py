"""The house's layout: every public name importable where it was before the split, no module over 600 lines.

``PUBLIC`` is the list of public names of each module as it stood before the modules became packages
(December 2026); a name may move inside a package, but ``from helpers.<module> import <name>`` keeps working.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "helpers"
MAX_LINES = 600

PUBLIC = {
    "io": """BACKENDS BACKEND_ENV CANONICAL_COLUMNS DataQualityReport EventDataError NA_SPELLINGS
        OPTIONAL_COLUMNS PLAUSIBLE_FROM PRESETS Preset SPARK_MASTER_ENV STRING US_PER_DAY
        XES_COLUMNS as_ibis available current_handoff data_quality default_backend epoch_us
        event_names events_fingerprint handoff_note load_events open_events read_load_info
        read_user_tables read_users to_utc to_utc_series user_attribute utc_naive write_events
        write_handoff""",
    "funnel": """FunnelResult NONE_SEGMENT Order Step compare_segments comparison_headline compute_funnel holm_adjust
        rank_friction value_per_conversion wilson_interval""",
    "paths": """ARROW paths_before_drop sessionize top_paths transition_matrix""",
    "personas": """DEFAULT_FEATURE_GROUPS FEATURE_GROUPS PersonaModel feature_group fit_personas informative_groups
        kpi_headline persona_kpis persona_table save_personas user_features""",
    "retention": """DAY HEALTH_WEIGHTS HazardResult RISK_FEATURES RetentionTable RiskResult SurvivalResult churn_risk
        cohort_retention hazard_ratios health_score retention_drivers risk_by_segment
        risk_factor_counts survival_curves user_lifetimes""",
    "journey": """JourneyProgression KPIS Kpi SURVEYS Stage StageMap StageRule Z95 changes_display changes_headline
        journey_changes kpi_display load_stage_map midpoint satisfaction stage_kpis
        stage_progression touchpoint_matrix""",
    "engagement": """lifecycle stickiness""",
    "audiences": """STANDARD at_risk audience_sizes audience_summary dropped_at_step export_audience export_standard
        promoters_without_referral stalled_new_users""",
    "plots": """LABEL_LIMIT PALETTE TEMPLATE calibration_chart channel_mix cohort_heatmap events_per_day
        events_per_type forest_plot friction_chart funnel_chart html_text init_notebook journey_map
        k_selection kpi_tiles label labels lifecycle_chart paths_sankey persona_heatmap
        persona_kpis_chart persona_projection persona_sizes risk_distribution segment_comparison
        stickiness_chart styled survival_chart time_to_convert touchpoint_heatmap""",
    "report": """ConfigError EMAIL HIDDEN_CELL_TAGS NotebookFailed NotebookSpec PACKAGES PrivacyError Prose
        RUN_DIR_ENV RUN_SALT_ENV ReportConfig RunResult content_security_policy escape finding
        load_config main notebook_parameters parse_overrides privacy_problems pseudonymize record
        render_html resolve_parameters run say shorten""",
    "sample": """ACQUISITION ACTIVATION_HAZARD_RATIO BASELINE_PERSONA BASELINE_SCALE_DAYS CHANNELS
        CHURN_SLOWDOWN_DAYS CHURN_SLOWDOWN_KEEP COUNTRIES DAY DUPLICATE_RATE EVENTS Journeys PAGES
        PART_USERS PERSONAS PLAN_PRICE Persona SESSION_EVENTS VARIANT_LIFT WEIBULL_SHAPE
        generate_journeys main write_sample""",
    "config": """AUDIENCES_DIR CONFIG_DIR DATA_DIR INTERIM_DIR NOTEBOOKS_DIR PROCESSED_DIR PROCESSED_EVENTS
        PROCESSED_PERSONAS PROJECT_ROOT RAW_DIR REPORTS_DIR SAMPLE_DIR SAMPLE_EVENTS SAMPLE_USERS
        resolve_path""",
}
MOVED_TO_RISK = "HEALTH_WEIGHTS RISK_FEATURES RiskResult churn_risk health_score risk_by_segment risk_factor_counts"


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_every_public_name_is_importable_where_it_was(module):
    mod = importlib.import_module(f"helpers.{module}")
    missing = [name for name in PUBLIC[module].split() if not hasattr(mod, name)]
    assert missing == [], f"helpers.{module} lost {missing}"
    for name in getattr(mod, "__all__", []):
        assert hasattr(mod, name), f"helpers.{module}.__all__ names {name!r}, which it does not have"


def test_early_warning_lives_in_risk_and_is_still_found_in_retention():
    from helpers import retention, risk

    for name in MOVED_TO_RISK.split():
        assert getattr(retention, name) is getattr(risk, name)
    exec("from helpers.retention import churn_risk, RiskResult", {})  # the from-import form works too
    with pytest.raises(AttributeError):
        retention.no_such_name


def test_no_module_is_over_600_lines_and_each_says_what_it_is_for():
    sizes = {p.relative_to(SRC).as_posix(): len(p.read_text().splitlines()) for p in SRC.rglob("*.py")}
    assert {p: n for p, n in sizes.items() if n > MAX_LINES} == {}
    assert not [p for p in sizes if Path(p).stem in ("utils", "util", "misc", "common")]
    undocumented = [p for p in sizes if not ast.get_docstring(ast.parse((SRC / p).read_text()))]
    assert undocumented == []


def test_every_import_of_a_helpers_name_resolves_including_those_inside_functions():
    """Imports inside functions only fail when the function runs (a report page, hours later): check them all."""
    import json

    sources = {p.as_posix(): p.read_text() for p in SRC.rglob("*.py")}
    for nb in (SRC.parents[1] / "notebooks").glob("*.ipynb"):
        cells = json.loads(nb.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        sources[nb.as_posix()] = "\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!")))
    broken = []
    for where, text in sources.items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "helpers":
                mod = importlib.import_module(node.module)
                broken += [f"{where}: from {node.module} import {a.name}" for a in node.names
                           if not hasattr(mod, a.name) and not _is_submodule(node.module, a.name)]
    assert broken == []


def _is_submodule(package: str, name: str) -> bool:
    try:
        importlib.import_module(f"{package}.{name}")
        return True
    except ImportError:
        return False

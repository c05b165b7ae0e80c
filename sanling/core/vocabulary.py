"""The data contract (docs/data-contract.md): column names, their Chinese aliases, the category
taxonomy and the warning tiers. Everything that names a column or a category imports it from here.

The normalised tables every later stage reads (written by :mod:`pipeline.ingest`) are:

``units``  — one row per unit
    unit_id (str), unit_name (str), unit_type (str: village|community|enterprise),
    township (str), county (str), city (str), lat (float64, NaN if unknown),
    lon (float64, NaN if unknown), then any static attribute columns (numeric → float64,
    anything else → str/category).

``events`` — one row per event or counted batch
    event_id (str), unit_id (str), occurred_at (datetime64[ns], local time, naive),
    category (str, canonical name), subtype (str or missing), severity (Int8 1–4 or missing),
    count (int32 ≥ 1), escalated (bool), casualties (int32 ≥ 0),
    resolved_at (datetime64[ns] or NaT = still open), reported_at (datetime64[ns], when the event
    entered the records; occurred_at when not given), escalated_at (datetime64[ns], NaT unless
    escalated; occurred_at when escalated without a date).

Optional dated tables (normalised in :mod:`pipeline.ingest.dated`): ``event_updates`` (event_id,
field, value as canonical text, recorded_at) and ``unit_history`` (unit_id, attribute, value as
text, valid_from).
"""

from __future__ import annotations

UNIT_TYPES: tuple[str, ...] = ("village", "community", "enterprise")
UNIT_TYPE_ALIASES: dict[str, str] = {
    "village": "village",
    "村": "village",
    "行政村": "village",
    "村庄": "village",
    "community": "community",
    "社区": "community",
    "城市社区": "community",
    "enterprise": "enterprise",
    "企事业单位": "enterprise",
    "企业": "enterprise",
    "事业单位": "enterprise",
    "企事业": "enterprise",
}
UNIT_TYPE_ZH: dict[str, str] = {"village": "村", "community": "社区", "enterprise": "企事业单位"}

UNIT_REQUIRED: tuple[str, ...] = ("unit_id", "unit_name", "unit_type", "township", "county", "city")
UNIT_OPTIONAL: tuple[str, ...] = ("lat", "lon")

EVENT_REQUIRED: tuple[str, ...] = ("event_id", "unit_id", "occurred_at", "category")
EVENT_OPTIONAL: tuple[str, ...] = (
    "subtype",
    "severity",
    "count",
    "escalated",
    "casualties",
    "resolved_at",
    "reported_at",
    "escalated_at",
)
EVENT_COLUMNS: tuple[str, ...] = EVENT_REQUIRED + EVENT_OPTIONAL

COLUMN_ALIASES: dict[str, str] = {
    "单位编码": "unit_id",
    "单位代码": "unit_id",
    "统一社会信用代码": "unit_id",
    "区划代码": "unit_id",
    "单位名称": "unit_name",
    "单位类型": "unit_type",
    "创建主体类型": "unit_type",
    "所属乡镇": "township",
    "乡镇": "township",
    "乡镇街道": "township",
    "所属乡镇街道": "township",
    "所属县区": "county",
    "县区": "county",
    "所属县": "county",
    "所属市": "city",
    "地市": "city",
    "所属地市": "city",
    "纬度": "lat",
    "经度": "lon",
    "事件编号": "event_id",
    "事件编码": "event_id",
    "发生时间": "occurred_at",
    "发生日期": "occurred_at",
    "事件类别": "category",
    "事件类型": "category",
    "事件子类": "subtype",
    "事件子类型": "subtype",
    "严重程度": "severity",
    "等级": "severity",
    "数量": "count",
    "件数": "count",
    "是否越级": "escalated",
    "越级": "escalated",
    "伤亡人数": "casualties",
    "化解时间": "resolved_at",
    "办结时间": "resolved_at",
    "结案时间": "resolved_at",
    "登记时间": "reported_at",
    "录入时间": "reported_at",
    "上报时间": "reported_at",
    "越级时间": "escalated_at",
    # event_updates (续报/更正)
    "更正字段": "field",
    "字段": "field",
    "更正内容": "value",
    "更正值": "value",
    "值": "value",
    "更正时间": "recorded_at",
    "续报时间": "recorded_at",
    "记录时间": "recorded_at",
    # followups (双排查 visits)
    "排查日期": "visited_at",
    "排查时间": "visited_at",
    "走访日期": "visited_at",
    "状态": "status",
    "整改状态": "status",
    "排查状态": "status",
    "整改措施": "measures",
    # unit_history
    "属性": "attribute",
    "属性名": "attribute",
    "生效日期": "valid_from",
    "起始日期": "valid_from",
}

# The optional dated tables (docs/data-contract.md): every column is required when the file is given.
OPTIONAL_TABLES: tuple[str, ...] = ("event_updates", "unit_history")
UPDATE_COLUMNS: tuple[str, ...] = ("event_id", "field", "value", "recorded_at")
HISTORY_COLUMNS: tuple[str, ...] = ("unit_id", "attribute", "value", "valid_from")
# What an update may change (canonical name or the column's Chinese header).
UPDATE_FIELD_ALIASES: dict[str, str] = {
    "severity": "severity",
    "严重程度": "severity",
    "casualties": "casualties",
    "伤亡人数": "casualties",
    "escalated": "escalated",
    "是否越级": "escalated",
    "resolved_at": "resolved_at",
    "化解时间": "resolved_at",
    "category": "category",
    "事件类别": "category",
    "subtype": "subtype",
    "事件子类": "subtype",
}
# Registry columns that name or place a unit: they have no history in ``unit_history``.
IDENTITY_COLUMNS: tuple[str, ...] = (
    "unit_id",
    "unit_name",
    "unit_type",
    "township",
    "county",
    "city",
    "lat",
    "lon",
)

# Canonical event categories with their Chinese names. A deployment may add categories in the
# configuration (``categories:``); these are the defaults of the Chinese taxonomy.
CATEGORIES_ZH: dict[str, str] = {
    "dispute": "矛盾纠纷",
    "petition": "信访",
    "public_security": "治安案件",
    "criminal": "刑事案件",
    "safety_accident": "安全事故",
    "fire": "火灾",
    "hazard": "风险隐患",
}

TIERS: tuple[str, ...] = ("blue", "yellow", "orange", "red")
TIER_ZH: dict[str, str] = {"blue": "蓝", "yellow": "黄", "orange": "橙", "red": "红"}
# One palette for every page, report, plot and Excel export: each tier's fill colour, and the text
# colour that stays legible on it (in print too).
TIER_COLOURS: dict[str, str] = {"blue": "#1f6fd1", "yellow": "#f2c200", "orange": "#f08c00", "red": "#d93025"}
TIER_TEXT_COLOURS: dict[str, str] = {
    "blue": "#ffffff",
    "yellow": "#000000",
    "orange": "#000000",
    "red": "#ffffff",
}

DEFAULT_TIER_RULES: dict[str, str] = {
    "red": "criminal >= 1 or petition_escalated >= 1 or casualties >= 1",
    "orange": "public_security >= 1 or petition >= 1 or safety_accident >= 1 or fire >= 1 "
    "or dispute_unresolved >= 2",
    "yellow": "dispute >= 1 or hazard >= 1",
}

"""Every component id of the dashboard, in one place (kebab-case, prefixed by panel)."""

URL = "page-url"
FILTER_ERROR = "filters-error"
STATUS = "page-status"  # errors that are not the user's: the database away, a bug

YEARS = "filters-years"
FUNDER = "filters-funder"
RECIPIENT = "filters-recipient"
THEME = "filters-theme"
SECTOR = "filters-sector"
COUNTRY = "filters-country"
SOURCE = "filters-source"
FLOW_TYPE = "filters-flow-type"
RESET = "filters-reset"
CURRENCY = "view-currency"  # display currency: a view setting in the URL, not a filter

HEADLINE_USD = "headline-usd"
HEADLINE_RECORDS = "headline-records"
HEADLINE_FUNDERS = "headline-funders"
HEADLINE_RECIPIENTS = "headline-recipients"
HEADLINE_NOTE = "headline-note"

MAP = "map-choropleth"
MAP_NOTE = "map-note"

TABLE_CONTAINER = "table-container"
TABLE = "table-grid"
TABLE_COUNT = "table-count"

EXPORT_CSV = "export-csv"
EXPORT_XLSX = "export-xlsx"
EXPORT_GEOJSON = "export-geojson"

# Dropdowns whose options come from the server as the user types.
SEARCHABLE_DROPDOWNS = {FUNDER: "funder", RECIPIENT: "recipient", SECTOR: "sector", COUNTRY: "country"}

# Pages: the workspace (filters, headline) holds the map page and the co-funder finder; profiles,
# sources and about stand alone. ``callbacks.pages`` shows the one the URL's path names.
NAVBAR = "page-navbar"
FOOTER = "page-footer"
PAGE_WORKSPACE = "page-workspace"
FILTERS_COLUMN = "page-filters-column"
WORKSPACE_CONTENT = "page-workspace-content"
PAGE_MAIN = "page-main"
PANEL_HEADLINE = "page-panel-headline"
PANEL_CHARTS = "page-panel-charts"
PANEL_TABLE = "page-panel-table"
EMBED_NOTE = "page-embed-note"  # on /embed: where the map comes from, and a link to the full view
PAGE_COFUNDERS = "page-cofunders"
PAGE_PROFILE = "page-profile"
PAGE_SOURCES = "page-sources"
PAGE_ABOUT = "page-about"
NAV_MAP = "nav-map"
NAV_COFUNDERS = "nav-cofunders"
NAV_SOURCES = "nav-sources"
NAV_ABOUT = "nav-about"
SOURCES_CONTENT = "sources-content"
ABOUT_SUMMARY = "about-summary"

CHART_YEARS = "charts-years"
CHART_FUNDERS = "charts-funders"
CHART_RECIPIENTS = "charts-recipients"
CHART_THEMES = "charts-themes"
# Clicking a bar filters by it: chart id -> the breakdown it shows.
CHARTS = {CHART_YEARS: "year", CHART_FUNDERS: "funder", CHART_RECIPIENTS: "recipient", CHART_THEMES: "theme"}

ACTIVE_FILTERS = "filters-active"
CHIP = "filters-chip"  # pattern-matching type of the removable filter chips


def chip(name: str, value: str) -> dict:
    """Id of the chip that removes ``value`` from filter ``name``."""
    return {"type": CHIP, "name": name, "value": value}

# --- the map panel (drill-down, points, metric) ------------------------------------------------
MAP_TITLE = "map-title"
MAP_METRIC = "map-metric"  # View.metric: what colours the map
MAP_SCALE = "map-scale"  # View.scale: log or quantile
MAP_WORLD = "map-world"  # the breadcrumb's "World": leaves the drill-down
MAP_CRUMB = "map-crumb"  # the breadcrumb's country
MAP_REGIONS = "map-regions"  # money no country holds, by region
MAP_PRECISION = "map-precision"  # share of money by place precision
MAP_BASIS = "map-basis"  # View.basis: where the money is spent, or where the recipient is based

# --- the co-funder finder, the network and baskets ----------------------------------------------
COFUNDERS_RANKING = "cofunders-ranking"
COFUNDERS_MORE = "cofunders-more"
COFUNDERS_LIKE = "cofunders-like"
COFUNDERS_SIMILAR = "cofunders-similar"
COFUNDERS_BASKET = "cofunders-basket"
COFUNDERS_NETWORK = "cofunders-network"
COFUNDERS_NETWORK_NOTE = "cofunders-network-note"

# --- profiles ------------------------------------------------------------------------------------
PROFILE_CONTENT = "profile-content"  # filled per /funder/<key> or /recipient/<key>
PROFILE_RECORDS = "profile-records"  # the records card (hidden when the key selects nothing)
PROFILE_TABLE_CONTAINER = "profile-table-container"
PROFILE_TABLE = "profile-grid"
PROFILE_TABLE_COUNT = "profile-table-count"
PROFILE_EXPORT_CSV = "profile-export-csv"
PROFILE_EXPORT_XLSX = "profile-export-xlsx"
PROFILE_MAP_LINK = "profile-map-link"
# Under the charts: profile links for the bars shown (chart id -> the list's id).
CHART_PROFILES = {CHART_FUNDERS: "charts-funders-profiles", CHART_RECIPIENTS: "charts-recipients-profiles"}
PROFILE_YEARS = "profile-years"
PROFILE_THEMES = "profile-themes"
PROFILE_MAP = "profile-map"

# --- the table and exports -----------------------------------------------------------------------
TABLE_COLUMN_CHOICE = "table-column-choice"  # the grid's columns (a view setting: ``columns`` in the URL)
TABLE_SEARCH = "table-search"  # quick search: the ``q`` filter
EXPORT_MANIFEST = "export-manifest"  # the manifest of the rows the export links download
EXPORT_MENU = "export-menu"  # summaries and the manifest
EXPORT_MENU_MANIFEST = "export-menu-manifest"  # the manifest again, in the menu


def export_summary(by: str, fmt: str) -> str:
    """Id of the export menu's link to the summary per ``by`` (funder, recipient, place, year) as ``fmt``."""
    return f"export-summary-{by}-{fmt}"

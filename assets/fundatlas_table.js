/* fundatlas table: link cells for dash-ag-grid (cellRenderer "FundatlasLink").
 * The cell's text is a React text child, so a name holding HTML (<img onerror=...>) is shown as text.
 * The link comes from the row field named by cellRendererParams.hrefField, built by the server
 * (callbacks/table.py); only a same-site path or an https URL is ever linked. External links open in
 * a new tab without an opener or a referrer. Nothing is fetched by the page. */
(function () {
  var fns = (window.dashAgGridComponentFunctions = window.dashAgGridComponentFunctions || {});
  fns.FundatlasLink = function (props) {
    var React = window.React;
    var text = props.value === null || props.value === undefined ? "" : String(props.value);
    var params = (props.colDef && props.colDef.cellRendererParams) || {};
    var href = props.data && params.hrefField ? props.data[params.hrefField] : null;
    if (typeof href !== "string") {
      return React.createElement("span", null, text);
    }
    var internal = href.charAt(0) === "/" && href.charAt(1) !== "/" && href.charAt(1) !== "\\";
    var external = href.indexOf("https://") === 0;
    if (!internal && !external) {
      return React.createElement("span", null, text);
    }
    var attrs = {href: href};
    if (external) {
      attrs.target = "_blank";
      attrs.rel = "noopener noreferrer";
      attrs.title = "The record at its source (opens a new tab)";
    }
    return React.createElement("a", attrs, text);
  };
})();

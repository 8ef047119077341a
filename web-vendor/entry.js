// what sashie/app/web/scatterplot.js holds: regl-scatterplot and what it needs, as one script
// that sets the global createScatterplot (a classic script: it also runs from a folder on disk)
import createScatterplot from "regl-scatterplot";

globalThis.createScatterplot = createScatterplot;

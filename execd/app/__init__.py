"""The daemon as a whole: start-up order, the actor graph, reload, ctl dispatch."""

error: cannot compile: a scan (a recurrence over a sequence) does not run on the gpu backend yet

"""Side-by-side benchmark harness: squashbox's FUSE server against the kernel and squashfuse."""

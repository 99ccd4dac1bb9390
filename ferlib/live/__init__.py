"""Live analysis: detection, tracking, the photo pipeline, the camera analyzer, video files, WebRTC, and your own
faces collected from photos and snapshots into a dataset."""

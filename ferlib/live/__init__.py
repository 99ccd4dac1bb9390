"""Live analysis: detection, tracking, the photo pipeline, the camera analyzer, video files, WebRTC."""

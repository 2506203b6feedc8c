"""Pictures to landmarks: frame sources (video, camera, images, RTSP, replayed recordings),
the MediaPipe landmark front end and where its model files come from, the task-driven
policy that decides which stages run on a frame, the ONNX landmark front end, and the
extraction of many videos into a clip store (worker processes, resumable).

May import: edge.core, and edge.backends (the ONNX front end runs its models through
one); mediapipe, OpenCV and onnxruntime inside the functions that need them.
"""

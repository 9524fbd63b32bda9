namespace Peft.Onnx.Exporter.Weights;

/// <summary>
/// Where a tensor's float32 values lie unchanged in a file: <paramref name="Length"/> bytes from byte
/// <paramref name="Offset"/> of <paramref name="Path"/> (little-endian, row-major), so a writer can copy them file to file.
/// </summary>
public sealed record StoredBytes(string Path, long Offset, long Length);

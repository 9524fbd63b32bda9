using Peft.Onnx.Exporter.Onnx.Proto;

namespace Peft.Onnx.Bench;

/// <summary>
/// One distinct MatMulNBits setting of a graph, shapes included: what decides which MLAS kernel runs (bits, block
/// size, accuracy level, zero points given) and how it splits the work (K inputs, N outputs), with the number of nodes
/// that ask for it. A decode step reads every node's weight once: <see cref="Weights"/> per step.
/// </summary>
public sealed record MatMulNBitsShape(int Bits, int BlockSize, int AccuracyLevel, bool ZeroPoints, long K, long N, int Count)
{
    /// <summary>The setting without its node count: equal keys are measured once.</summary>
    public (int Bits, int BlockSize, int AccuracyLevel, bool ZeroPoints, long K, long N) Key => (Bits, BlockSize, AccuracyLevel, ZeroPoints, K, N);

    /// <summary>Weights one step reads through the nodes of this setting (Count x K x N).</summary>
    public long Weights => Count * K * N;

    /// <summary>Bytes of one node's weight: codes, one float32 scale per block and, when given, packed zero points.</summary>
    public long NodeBytes => ByteCount(Bits, BlockSize, ZeroPoints, K, N);

    /// <summary>Bytes of a [N, K] weight quantized in blocks of <paramref name="blockSize"/> along K.</summary>
    public static long ByteCount(int bits, int blockSize, bool zeroPoints, long k, long n)
    {
        long blocks = (k + blockSize - 1) / blockSize;
        long zeroPointBytes = zeroPoints ? (bits == 8 ? blocks : (blocks + 1) / 2) : 0;
        return n * (blocks * blockSize * bits / 8 + blocks * 4 + zeroPointBytes);
    }

    /// <summary>The distinct settings of <paramref name="nodes"/>' MatMulNBits nodes, in the order they first appear.</summary>
    public static List<MatMulNBitsShape> Group(IEnumerable<NodeProto> nodes)
    {
        long Attr(NodeProto n, string name) => n.Attribute.FirstOrDefault(a => a.Name == name)?.I ?? 0;
        return nodes.Where(n => n.OpType == "MatMulNBits")
            .GroupBy(n => (Bits: (int)Attr(n, "bits"), Block: (int)Attr(n, "block_size"), Level: (int)Attr(n, "accuracy_level"),
                ZeroPoints: n.Input.Count > 3 && n.Input[3] != "", K: Attr(n, "K"), N: Attr(n, "N")))
            .Select(g => new MatMulNBitsShape(g.Key.Bits, g.Key.Block, g.Key.Level, g.Key.ZeroPoints, g.Key.K, g.Key.N, g.Count()))
            .ToList();
    }

    /// <summary>The distinct settings of the model file's MatMulNBits nodes (the graph only: external data is not read).</summary>
    public static List<MatMulNBitsShape> Read(string modelPath) =>
        Group(ModelProto.Parser.ParseFrom(File.ReadAllBytes(modelPath)).Graph.Node);

    public override string ToString() =>
        $"{Bits}-bit block {BlockSize} level {AccuracyLevel}{(ZeroPoints ? " asymmetric" : "")} {K}x{N}";
}

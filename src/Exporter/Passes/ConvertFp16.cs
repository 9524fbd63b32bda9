using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Onnx.Proto;

namespace Peft.Onnx.Exporter.Passes;

/// <summary>
/// export --dtype fp16: rewrites a finished float32 graph into float16 weights and compute.
/// <list type="bullet">
/// <item>Every float32 initializer becomes float16 (converted as it streams; values beyond ±65504 saturate, so
/// transformers' finfo(float32).min masks become finfo(float16).min instead of -inf).</item>
/// <item>Float graph inputs and outputs become float16 (past_key_values.* and present.* included: the KV cache is
/// float16), except the outputs named in keepFloat32 (logits): those get a final Cast to float32. Integer inputs
/// (input_ids, attention_mask, position_ids) are unchanged.</item>
/// <item>Cast-to-float nodes cast to float16 instead.</item>
/// <item>Position math stays float32 (nodes under a rotary_emb or alibi scope: positions beyond 2048 are not exact in
/// float16); Casts are inserted where its values meet float16 ones.</item>
/// </list>
/// Element types are tracked per value with the few rules our opset-17 graphs need (Cast: its "to"; Shape: int64;
/// comparisons and And: bool; Where: its second input; everything else: its first input).
/// </summary>
public static class ConvertFp16
{
    /// <summary>Node-name fragments whose nodes keep float32.</summary>
    public static readonly string[] Float32Scopes = ["/rotary_emb/", "/alibi/"];

    public const float MaxHalf = HalfConversion.MaxHalf;

    public static GraphBuilder Convert(GraphBuilder source, IReadOnlyCollection<string> keepFloat32)
    {
        var original = new Dictionary<string, ElementType>(StringComparer.Ordinal);   // type in the float32 graph
        var current = new Dictionary<string, ElementType>(StringComparer.Ordinal);    // type in the converted graph
        foreach (var i in source.Inputs) original[i.Name] = (ElementType)i.Type.TensorType.ElemType;
        foreach (var (name, data) in source.Initializers) original[name] = data.Type;
        foreach (var n in source.Nodes)
        {
            var t = OutputType(n, original);
            foreach (var o in n.Output) original[o] = t;
        }

        bool Blocked(NodeProto n) => Float32Scopes.Any(s => n.Name.Contains(s, StringComparison.Ordinal));
        var usedByBlocked = new HashSet<string>(source.Nodes.Where(Blocked).SelectMany(n => n.Input), StringComparer.Ordinal);
        var usedByOthers = new HashSet<string>(source.Nodes.Where(n => !Blocked(n)).SelectMany(n => n.Input), StringComparer.Ordinal);

        var g = new GraphBuilder(source.Name);
        foreach (var i in source.Inputs)
        {
            var t = original[i.Name];
            current[i.Name] = Half(t);
            g.Input(i.Name, Half(t), Dims(i));
        }

        var float32Copies = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, data) in source.Initializers)
        {
            if (data.Type != ElementType.Float)
            {
                g.Initializer(name, data);
                current[name] = data.Type;
                continue;
            }
            bool others = usedByOthers.Contains(name) || !usedByBlocked.Contains(name);
            if (others)
            {
                g.Initializer(name, ToHalf(data));
                current[name] = ElementType.Float16;
            }
            if (usedByBlocked.Contains(name))
            {
                var copy = others ? name + "/float32" : name;
                g.Initializer(copy, data);
                current[copy] = ElementType.Float;
                float32Copies[name] = copy;
            }
        }

        var renamed = keepFloat32.ToDictionary(o => o, o => o + "/float16", StringComparer.Ordinal);
        var casts = new Dictionary<(string, ElementType), string>();
        string As(string value, ElementType type)
        {
            if (current[value] == type) return value;
            if (casts.TryGetValue((value, type), out var existing)) return existing;
            var cast = g.Node("Cast", [value], name: value.TrimStart('/') + "/Cast_" + type.ShortName(), attributes: [Attr.Int("to", (long)type)])[0];
            current[cast] = type;
            casts[(value, type)] = cast;
            return cast;
        }

        foreach (var n in source.Nodes)
        {
            bool blocked = Blocked(n);
            var inputs = new List<string>();
            foreach (var raw in n.Input)
            {
                if (raw.Length == 0) { inputs.Add(raw); continue; }
                var name = renamed.GetValueOrDefault(raw, raw);
                if (original[raw] != ElementType.Float) { inputs.Add(name); continue; }
                if (blocked) inputs.Add(float32Copies.TryGetValue(raw, out var copy) ? copy : As(name, ElementType.Float));
                else inputs.Add(As(name, ElementType.Float16));
            }
            var attributes = n.Attribute.Select(a => a.Clone()).ToList();
            if (!blocked && n.OpType == "Cast")
                foreach (var a in attributes)
                    if (a.Name == "to" && a.I == (long)ElementType.Float) a.I = (long)ElementType.Float16;
            var outputs = n.Output.Select(o => renamed.GetValueOrDefault(o, o)).ToList();
            g.Node(n.OpType, inputs, outputs: outputs, name: n.Name.TrimStart('/'), domain: n.Domain, attributes: attributes);
            foreach (var (o, src) in outputs.Zip(n.Output))
                current[o] = blocked ? original[src] : Half(original[src]);
        }

        foreach (var o in source.Outputs)
        {
            var t = (ElementType)o.Type.TensorType.ElemType;
            if (renamed.TryGetValue(o.Name, out var half))
            {
                g.Node("Cast", [half], outputs: [o.Name], name: o.Name + "/Cast_f32", attributes: [Attr.Int("to", (long)ElementType.Float)]);
                g.Output(o.Name, t, Dims(o));
            }
            else
            {
                if (current.TryGetValue(o.Name, out var c) && c != Half(t))
                    throw new InvalidOperationException($"fp16 conversion: output '{o.Name}' is {c}, expected {Half(t)}");
                g.Output(o.Name, Half(t), Dims(o));
            }
        }
        return g;
    }

    private static ElementType Half(ElementType t) => t == ElementType.Float ? ElementType.Float16 : t;

    private static Dim[] Dims(ValueInfoProto v) =>
        v.Type.TensorType.Shape.Dim.Select(d => d.HasDimParam ? Dim.Symbolic(d.DimParam) : Dim.Fixed(d.DimValue)).ToArray();

    private static ElementType OutputType(NodeProto n, Dictionary<string, ElementType> types)
    {
        ElementType In(int k) => types.TryGetValue(n.Input[k], out var t) ? t : throw new InvalidOperationException($"fp16 conversion: unknown type of '{n.Input[k]}' ({n.Name})");
        return n.OpType switch
        {
            "Cast" => (ElementType)n.Attribute.First(a => a.Name == "to").I,
            "Shape" or "Size" or "NonZero" or "ArgMax" or "ArgMin" => ElementType.Int64,
            "Equal" or "Less" or "LessOrEqual" or "Greater" or "GreaterOrEqual" or "And" or "Or" or "Not" or "Xor" or "IsNaN" or "IsInf" => ElementType.Bool,
            "Where" => In(1),
            "Constant" or "ConstantOfShape" or "EyeLike" or "RandomNormal" or "RandomUniform" or "RandomNormalLike" or "RandomUniformLike" or "Multinomial"
                => throw new InvalidOperationException($"fp16 conversion: {n.OpType} ({n.Name}) is not handled"),
            _ => In(0),
        };
    }

    /// <summary>A float32 initializer as float16 (saturating at ±65504), converted as it streams to the data file.</summary>
    public static InitializerData ToHalf(InitializerData data) => data.ToFloat16();

    /// <summary>One value as the conversion writes it (<see cref="HalfConversion"/>).</summary>
    public static Half ToHalf(float f) => HalfConversion.ToHalf(f);
}

using System.Globalization;
using System.Security.Cryptography;
using Peft.Onnx.Exporter.Onnx.Proto;

namespace Peft.Onnx.Exporter.Onnx;

/// <summary>
/// Builds one ONNX graph in SSA form: graph inputs/outputs with symbolic dims, named initializers (weights,
/// possibly deferred), deduplicated constants, and nodes named by path like
/// <c>/transformer/h.0/self_attention/query_key_value/MatMul</c>. Everything is kept in insertion order, so
/// the same calls give the same model bytes. <see cref="ModelWriter"/> turns it into model.onnx + external data.
/// </summary>
public sealed class GraphBuilder
{
    private readonly List<ValueInfoProto> _inputs = [];
    private readonly List<ValueInfoProto> _outputs = [];
    private readonly List<NodeProto> _nodes = [];
    private readonly List<(string Name, InitializerData Data)> _initializers = [];
    private readonly HashSet<string> _values = new(StringComparer.Ordinal);
    private readonly HashSet<string> _nodeNames = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _constants = new(StringComparer.Ordinal);
    private readonly SortedSet<string> _domains = new(StringComparer.Ordinal);
    private readonly Stack<string> _scopes = new();
    private int _constantCount;

    public GraphBuilder(string name = "main_graph") => Name = name;

    public string Name { get; }
    public IReadOnlyList<ValueInfoProto> Inputs => _inputs;
    public IReadOnlyList<ValueInfoProto> Outputs => _outputs;
    public IReadOnlyList<NodeProto> Nodes => _nodes;
    public IReadOnlyList<(string Name, InitializerData Data)> Initializers => _initializers;

    /// <summary>Non-default operator domains used by nodes (e.g. "com.microsoft"), sorted.</summary>
    public IReadOnlyCollection<string> Domains => _domains;

    /// <summary>The node-name prefix in effect ("" at top level, else "/a/b").</summary>
    public string CurrentScope => _scopes.Count == 0 ? "" : _scopes.Peek();

    // ---------------------------------------------------------------- inputs and outputs

    /// <summary>Declares a graph input; returns its name for use as a node input.</summary>
    public string Input(string name, ElementType type, params Dim[] shape)
    {
        Define(name);
        _inputs.Add(ValueInfo(name, type, shape));
        return name;
    }

    /// <summary>Declares a graph output. The value must be defined (usually as a node's named output) before <see cref="Validate"/>.</summary>
    public void Output(string name, ElementType type, params Dim[] shape)
    {
        if (_outputs.Any(o => o.Name == name)) throw new InvalidOperationException($"graph output '{name}' declared twice");
        _outputs.Add(ValueInfo(name, type, shape));
    }

    private static ValueInfoProto ValueInfo(string name, ElementType type, Dim[] shape)
    {
        var tensorShape = new TensorShapeProto();
        foreach (var d in shape)
        {
            var dim = new TensorShapeProto.Types.Dimension();
            if (d.Param != null) dim.DimParam = d.Param;
            else dim.DimValue = d.Value!.Value;
            tensorShape.Dim.Add(dim);
        }
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = tensorShape } },
        };
    }

    // ---------------------------------------------------------------- initializers and constants

    /// <summary>
    /// Adds a named initializer (a weight); returns its name. An initializer named as a declared graph input is that
    /// input's default value (ONNX IR >= 4: ORT lists it as an overridable initializer, callers may feed it or not).
    /// </summary>
    public string Initializer(string name, InitializerData data)
    {
        bool inputDefault = _inputs.Any(i => i.Name == name) && !_initializers.Any(i => i.Name == name);
        if (!inputDefault) Define(name);
        _initializers.Add((name, data));
        return name;
    }

    public string Initializer(string name, float[] values, params long[] dims) => Initializer(name, InitializerData.FromFloats(values, dims));

    public string Initializer(string name, long[] values, params long[] dims) => Initializer(name, InitializerData.FromInt64(values, dims));

    public string Initializer(string name, ElementType type, long[] dims, ReadOnlySpan<byte> bytes) =>
        Initializer(name, InitializerData.FromBytes(type, dims, bytes));

    /// <summary>
    /// A constant initializer, deduplicated by content: the same type, shape and bytes give the same name
    /// (<c>/constants/{type}_{n}</c>, numbered in first-use order). Meant for small tensors (shapes, axes, scalars).
    /// </summary>
    public string Constant(InitializerData data)
    {
        var bytes = data.ToArray();
        var key = $"{data.Type}|{string.Join(",", data.Dims)}|{Convert.ToHexString(SHA256.HashData(bytes))}";
        if (_constants.TryGetValue(key, out var existing)) return existing;
        var name = $"/constants/{data.Type.ShortName()}_{_constantCount++}";
        Initializer(name, InitializerData.FromBytes(data.Type, data.Dims, bytes));
        _constants[key] = name;
        return name;
    }

    /// <summary>Scalar float32 constant (rank 0).</summary>
    public string Constant(float value) => Constant(InitializerData.Scalar(value));

    /// <summary>Scalar int64 constant (rank 0).</summary>
    public string Constant(long value) => Constant(InitializerData.Scalar(value));

    /// <summary>1-D int64 constant (shapes, axes, starts/ends).</summary>
    public string Ints(params long[] values) => Constant(InitializerData.FromInt64(values, values.Length));

    /// <summary>1-D float32 constant.</summary>
    public string Floats(params float[] values) => Constant(InitializerData.FromFloats(values, values.Length));

    // ---------------------------------------------------------------- nodes

    /// <summary>
    /// Opens a node-name scope: a relative segment ("h.0") is appended to the current scope, an absolute
    /// path ("/transformer/h.0") replaces it. Dispose to return to the enclosing scope.
    /// </summary>
    public IDisposable Scope(string path)
    {
        if (string.IsNullOrEmpty(path)) throw new ArgumentException("scope path is empty", nameof(path));
        _scopes.Push(path.StartsWith('/') ? path.TrimEnd('/') : $"{CurrentScope}/{path.Trim('/')}");
        return new ScopeExit(this);
    }

    /// <summary>
    /// Adds a node and returns its output names. The node is named <c>{scope}/{name ?? opType}</c> (a suffix
    /// _1, _2, ... keeps names unique); unnamed outputs become <c>{node name}/output_{k}</c>. Inputs must
    /// already be defined ("" stands for an omitted optional input).
    /// </summary>
    public IReadOnlyList<string> Node(
        string opType,
        IReadOnlyList<string> inputs,
        IReadOnlyList<string>? outputs = null,
        int outputCount = 1,
        string? name = null,
        string domain = "",
        IEnumerable<AttributeProto>? attributes = null)
    {
        foreach (var input in inputs)
            if (input.Length > 0 && !_values.Contains(input))
                throw new InvalidOperationException($"{opType} node in '{CurrentScope}': input '{input}' is not defined yet");

        var nodeName = UniqueNodeName($"{CurrentScope}/{name ?? opType}");
        var outputNames = outputs?.ToArray() ?? Enumerable.Range(0, outputCount).Select(k => $"{nodeName}/output_{k}").ToArray();
        foreach (var o in outputNames) Define(o);

        var node = new NodeProto { Name = nodeName, OpType = opType };
        if (domain.Length > 0)
        {
            node.Domain = domain;
            _domains.Add(domain);
        }
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputNames);
        if (attributes != null) node.Attribute.AddRange(attributes);
        _nodes.Add(node);
        return outputNames;
    }

    /// <summary>A single-output node named after its op type in the current scope.</summary>
    public string Op(string opType, IReadOnlyList<string> inputs, params AttributeProto[] attributes) =>
        Node(opType, inputs, attributes: attributes)[0];

    /// <summary>A single-output node with an explicit output name (e.g. a graph output such as "logits").</summary>
    public string OpTo(string output, string opType, IReadOnlyList<string> inputs, params AttributeProto[] attributes) =>
        Node(opType, inputs, outputs: [output], attributes: attributes)[0];

    /// <summary>Checks that every graph output is defined.</summary>
    public void Validate()
    {
        foreach (var o in _outputs)
            if (!_values.Contains(o.Name)) throw new InvalidOperationException($"graph output '{o.Name}' is never produced");
    }

    private void Define(string value)
    {
        if (string.IsNullOrEmpty(value)) throw new ArgumentException("value names must be non-empty");
        if (!_values.Add(value)) throw new InvalidOperationException($"value '{value}' is defined twice");
    }

    private string UniqueNodeName(string baseName)
    {
        var candidate = baseName;
        for (int k = 1; !_nodeNames.Add(candidate); k++) candidate = string.Create(CultureInfo.InvariantCulture, $"{baseName}_{k}");
        return candidate;
    }

    private sealed class ScopeExit(GraphBuilder owner) : IDisposable
    {
        private bool _done;

        public void Dispose()
        {
            if (_done) return;
            _done = true;
            owner._scopes.Pop();
        }
    }
}

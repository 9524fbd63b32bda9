using Peft.Onnx.Server.Api;
using Peft.Onnx.Server.Metrics;

namespace Peft.Onnx.Server;

/// <summary>What the endpoints share: the options, the loaded models by name, the metrics.</summary>
public sealed class ServerState(ServeOptions options, IReadOnlyDictionary<string, ServedModel> models, ServerMetrics metrics)
{
    public ServeOptions Options { get; } = options;
    public IReadOnlyDictionary<string, ServedModel> Models { get; } = models;
    public ServerMetrics Metrics { get; } = metrics;

    /// <summary>
    /// The model a request names: a served export's base by its name, or one of its adapters by the adapter's name (as
    /// the model lists them now); 404 with OpenAI's model_not_found otherwise, listing the known names (names only,
    /// never paths).
    /// </summary>
    public ModelChoice Find(string name)
    {
        if (Models.TryGetValue(name, out var model)) return new ModelChoice(model, name, null);
        foreach (var served in Models.Values)
            if (served.Model.Adapters.Contains(name, StringComparer.Ordinal)) return new ModelChoice(served, name, name);
        throw new ApiException(404, $"the model '{name}' does not exist; served: {string.Join(", ", KnownNames())}", param: "model", code: "model_not_found");
    }

    /// <summary>Every name a request may give: each export's base, then its adapters.</summary>
    public IEnumerable<(string Name, ServedModel Served, bool IsAdapter)> Names() =>
        Models.Values.SelectMany(m => new[] { (m.Name, m, false) }.Concat(m.Model.Adapters.Where(a => a != m.Name).Select(a => (a, m, true))));

    private IEnumerable<string> KnownNames() => Names().Select(n => n.Name);
}

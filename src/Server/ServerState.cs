using Peft.Onnx.Server.Api;
using Peft.Onnx.Server.Metrics;

namespace Peft.Onnx.Server;

/// <summary>What the endpoints share: the options, the loaded models by name, the metrics.</summary>
public sealed class ServerState(ServeOptions options, IReadOnlyDictionary<string, ServedModel> models, ServerMetrics metrics)
{
    public ServeOptions Options { get; } = options;
    public IReadOnlyDictionary<string, ServedModel> Models { get; } = models;
    public ServerMetrics Metrics { get; } = metrics;

    /// <summary>The model a request names; 404 with OpenAI's model_not_found otherwise (names only, never paths).</summary>
    public ServedModel Find(string name) =>
        Models.TryGetValue(name, out var model) ? model
        : throw new ApiException(404, $"the model '{name}' does not exist; GET /v1/models lists the served ones", param: "model", code: "model_not_found");
}

using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;

namespace Peft.Onnx.Core.Families;

/// <summary>A family whose config.json is read into <typeparamref name="TConfig"/>.</summary>
public abstract class ModelFamily<TConfig> : ModelFamily where TConfig : ModelConfig
{
    public override Type ConfigType => typeof(TConfig);

    public sealed override Architecture Architecture(ModelConfig config) => config is TConfig typed
        ? Create(typed)
        : throw new PeftOnnxException($"{config.SourcePath}: model_type '{config.ModelType}' is not {ModelType} (expected a {typeof(TConfig).Name})");

    protected abstract Architecture Create(TConfig config);
}

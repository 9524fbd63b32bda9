using Peft.Onnx.Core;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Training;

/// <summary>
/// Which optimizer to build and with what hyper-parameters, as the CLI names them (--optimizer sgd|adamw,
/// --lr, --betas, --eps, --weight-decay). Unset values take torch.optim's defaults.
/// </summary>
public sealed record OptimizerSettings(string Name, double Lr, double? Beta1 = null, double? Beta2 = null, double? Eps = null, double? WeightDecay = null)
{
    public static readonly string[] Names = ["sgd", "adamw"];

    public Optimizer Create(IReadOnlyList<(string Name, Tensor Parameter)> parameters) => Name switch
    {
        "sgd" => new Sgd(parameters, ToSgd()),
        "adamw" => new AdamW(parameters, ToAdamW()),
        _ => throw new PeftOnnxException($"optimizer '{Name}' is not one of {string.Join(", ", Names)}"),
    };

    /// <summary>Checks the values without building anything (so the CLI fails before loading a model).</summary>
    public void Validate()
    {
        if (!(Lr >= 0) || !double.IsFinite(Lr)) throw new PeftOnnxException($"learning rate {Lr} is invalid (expected a finite number >= 0)");
        switch (Name)
        {
            case "sgd":
                if (Beta1 is not null || Beta2 is not null) throw new PeftOnnxException("--betas applies to adamw only");
                if (Eps is not null) throw new PeftOnnxException("--eps applies to adamw only");
                ToSgd().Validate();
                break;
            case "adamw":
                ToAdamW().Validate();
                break;
            default:
                throw new PeftOnnxException($"optimizer '{Name}' is not one of {string.Join(", ", Names)}");
        }
    }

    private SgdOptions ToSgd() => new(Lr, WeightDecay: WeightDecay ?? 0);

    private AdamWOptions ToAdamW()
    {
        var d = new AdamWOptions();
        return new AdamWOptions(Lr, Beta1 ?? d.Beta1, Beta2 ?? d.Beta2, Eps ?? d.Eps, WeightDecay ?? d.WeightDecay);
    }

    /// <summary>The effective hyper-parameters (defaults filled), for logs and --json.</summary>
    public IReadOnlyDictionary<string, object> Describe()
    {
        if (Name != "adamw") return new Dictionary<string, object> { ["name"] = Name, ["lr"] = Lr, ["weight_decay"] = WeightDecay ?? 0 };
        var a = ToAdamW();
        return new Dictionary<string, object>
        {
            ["name"] = Name, ["lr"] = a.Lr, ["betas"] = new[] { a.Beta1, a.Beta2 }, ["eps"] = a.Eps, ["weight_decay"] = a.WeightDecay,
        };
    }
}

namespace Peft.Onnx.Runtime.Chat;

/// <summary>namespace(...): a mapping whose attributes a {% set ns.x = ... %} inside a loop may change.</summary>
internal sealed class TemplateNamespace : Dictionary<string, object?>
{
    public TemplateNamespace() : base(StringComparer.Ordinal) { }
}


namespace Peft.Onnx.Runtime.Chat;

/// <summary>
/// Compiles one tag's expression into a function of the scope, with Jinja's precedence: conditional, or, and, not,
/// comparisons (in, not in), + -, ~, * / // %, **, unary minus, then postfix (.x, [i], [a:b], calls), filters and tests.
/// </summary>
internal sealed class ExpressionParser
{
    private readonly List<ExpressionToken> _tokens;
    private int _at;

    public ExpressionParser(string text) => _tokens = ExpressionLexer.Tokenize(text);

    public ExpressionToken Peek(int ahead = 0) => _tokens[Math.Min(_at + ahead, _tokens.Count - 1)];

    public bool AtEnd => Peek().Kind == ExpressionTokenKind.End;

    public bool IsName(string name, int ahead = 0) => Peek(ahead) is { Kind: ExpressionTokenKind.Name } t && t.Text == name;

    public bool IsOp(string op) => Peek() is { Kind: ExpressionTokenKind.Operator } t && t.Text == op;

    public bool TakeName(string name)
    {
        if (!IsName(name)) return false;
        _at++;
        return true;
    }

    public bool TakeOp(string op)
    {
        if (!IsOp(op)) return false;
        _at++;
        return true;
    }

    public string Name()
    {
        var t = Peek();
        if (t.Kind != ExpressionTokenKind.Name) throw new TemplateException($"expected a name, found '{t.Text}'");
        _at++;
        return t.Text;
    }

    public void ExpectOp(string op)
    {
        if (!TakeOp(op)) throw new TemplateException($"expected '{op}', found '{Peek().Text}'");
    }

    public void ExpectEnd()
    {
        if (!AtEnd) throw new TemplateException($"unexpected '{Peek().Text}'");
    }

    public Func<TemplateScope, object?> Expression()
    {
        var value = Or();
        if (!TakeName("if")) return value;
        var condition = Or();
        var otherwise = TakeName("else") ? Expression() : _ => Undefined.Value;
        return s => TemplateValues.Truthy(condition(s)) ? value(s) : otherwise(s);
    }

    /// <summary>An expression without the conditional form (a for loop's "if" filter follows its iterable).</summary>
    public Func<TemplateScope, object?> Or()
    {
        var left = And();
        while (TakeName("or"))
        {
            var l = left;
            var r = And();
            left = s => l(s) is var v && TemplateValues.Truthy(v) ? v : r(s);
        }
        return left;
    }

    private Func<TemplateScope, object?> And()
    {
        var left = Not();
        while (TakeName("and"))
        {
            var l = left;
            var r = Not();
            left = s => l(s) is var v && !TemplateValues.Truthy(v) ? v : r(s);
        }
        return left;
    }

    private Func<TemplateScope, object?> Not()
    {
        if (TakeName("not"))
        {
            var inner = Not();
            return s => !TemplateValues.Truthy(inner(s));
        }
        return Compare();
    }

    private Func<TemplateScope, object?> Compare()
    {
        var left = Sum();
        while (true)
        {
            var l = left;
            if (Peek() is { Kind: ExpressionTokenKind.Operator, Text: "==" or "!=" or "<" or ">" or "<=" or ">=" } op)
            {
                _at++;
                var r = Sum();
                left = op.Text switch
                {
                    "==" => s => TemplateValues.Equal(l(s), r(s)),
                    "!=" => s => !TemplateValues.Equal(l(s), r(s)),
                    "<" => s => TemplateValues.Compare(l(s), r(s)) < 0,
                    ">" => s => TemplateValues.Compare(l(s), r(s)) > 0,
                    "<=" => s => TemplateValues.Compare(l(s), r(s)) <= 0,
                    _ => s => TemplateValues.Compare(l(s), r(s)) >= 0,
                };
            }
            else if (IsName("in"))
            {
                _at++;
                var r = Sum();
                left = s => TemplateValues.Contains(r(s), l(s));
            }
            else if (IsName("not") && IsName("in", 1))
            {
                _at += 2;
                var r = Sum();
                left = s => !TemplateValues.Contains(r(s), l(s));
            }
            else return left;
        }
    }

    private Func<TemplateScope, object?> Sum()
    {
        var left = Concat();
        while (Peek() is { Kind: ExpressionTokenKind.Operator, Text: "+" or "-" } op)
        {
            _at++;
            var l = left;
            var r = Concat();
            left = op.Text == "+" ? s => TemplateValues.Add(l(s), r(s)) : s => TemplateValues.Arithmetic("-", l(s), r(s));
        }
        return left;
    }

    private Func<TemplateScope, object?> Concat()
    {
        var left = Product();
        while (TakeOp("~"))
        {
            var l = left;
            var r = Product();
            left = s => TemplateValues.Text(l(s)) + TemplateValues.Text(r(s));
        }
        return left;
    }

    private Func<TemplateScope, object?> Product()
    {
        var left = Power();
        while (Peek() is { Kind: ExpressionTokenKind.Operator, Text: "*" or "/" or "//" or "%" } op)
        {
            _at++;
            var l = left;
            var r = Power();
            left = s => TemplateValues.Arithmetic(op.Text, l(s), r(s));
        }
        return left;
    }

    private Func<TemplateScope, object?> Power()
    {
        var left = Unary();
        while (TakeOp("**"))
        {
            var l = left;
            var r = Unary();
            left = s => TemplateValues.Arithmetic("**", l(s), r(s));
        }
        return left;
    }

    private Func<TemplateScope, object?> Unary()
    {
        if (TakeOp("-"))
        {
            var inner = Unary();
            return s => inner(s) switch { long l => (object)(-l), var v => -TemplateValues.Number(v) };
        }
        if (TakeOp("+")) return Unary();
        return FiltersAndTests(Postfix(Primary()));
    }

    private Func<TemplateScope, object?> FiltersAndTests(Func<TemplateScope, object?> value)
    {
        while (true)
        {
            var v = value;
            if (TakeOp("|"))
            {
                var name = Name();
                var (args, kwargs) = IsOp("(") ? Arguments() : ([], []);
                value = s => Filters.Apply(name, v(s), Evaluate(args, s), EvaluateNamed(kwargs, s));
            }
            else if (TakeName("is"))
            {
                bool negate = TakeName("not");
                var name = IsName("none") || IsName("true") || IsName("false") ? Name() : Peek().Kind == ExpressionTokenKind.Operator ? OpName() : Name();
                var args = new List<Func<TemplateScope, object?>>();
                if (IsOp("(")) args = Arguments().Args;
                else if (!AtEnd && Peek().Kind is ExpressionTokenKind.String or ExpressionTokenKind.Number) args.Add(Primary());
                value = s => Tests.Check(name, v(s), Evaluate(args, s)) != negate;
            }
            else return value;
        }
    }

    private string OpName()
    {
        var t = Peek();
        _at++;
        return t.Text;
    }

    private Func<TemplateScope, object?> Postfix(Func<TemplateScope, object?> value)
    {
        while (true)
        {
            var v = value;
            if (TakeOp("."))
            {
                var name = Name();
                value = s => TemplateValues.Item(v(s), name);
            }
            else if (TakeOp("["))
            {
                Func<TemplateScope, object?>? start = null, stop = null, step = null;
                if (!IsOp(":")) start = Expression();
                if (TakeOp(":"))
                {
                    if (!IsOp("]") && !IsOp(":")) stop = Expression();
                    if (TakeOp(":") && !IsOp("]")) step = Expression();
                    ExpectOp("]");
                    value = s => TemplateValues.Slice(v(s), Index(start, s), Index(stop, s), Index(step, s));
                }
                else
                {
                    ExpectOp("]");
                    var key = start!;
                    value = s => TemplateValues.Item(v(s), key(s));
                }
            }
            else if (IsOp("("))
            {
                var (args, kwargs) = Arguments();
                value = s => v(s) is TemplateCallable f ? f(Evaluate(args, s), EvaluateNamed(kwargs, s)) : throw new TemplateException("a call of a value that is not a function");
            }
            else return value;
        }
    }

    private static long? Index(Func<TemplateScope, object?>? e, TemplateScope s) => e?.Invoke(s) switch
    {
        null => null,
        long l => l,
        var other => other is null ? null : throw new TemplateException($"a slice index must be an integer, got {TemplateValues.TypeName(other)}"),
    };

    private (List<Func<TemplateScope, object?>> Args, List<(string, Func<TemplateScope, object?>)> Named) Arguments()
    {
        ExpectOp("(");
        var args = new List<Func<TemplateScope, object?>>();
        var named = new List<(string, Func<TemplateScope, object?>)>();
        while (!TakeOp(")"))
        {
            if (Peek().Kind == ExpressionTokenKind.Name && Peek(1) is { Kind: ExpressionTokenKind.Operator, Text: "=" })
            {
                var name = Name();
                _at++;
                named.Add((name, Expression()));
            }
            else args.Add(Expression());
            if (!IsOp(")")) ExpectOp(",");
        }
        return (args, named);
    }

    private static List<object?> Evaluate(List<Func<TemplateScope, object?>> args, TemplateScope s) => args.Select(a => a(s)).ToList();

    private static Dictionary<string, object?> EvaluateNamed(List<(string Name, Func<TemplateScope, object?> Value)> named, TemplateScope s) =>
        named.ToDictionary(n => n.Name, n => n.Value(s), StringComparer.Ordinal);

    private Func<TemplateScope, object?> Primary()
    {
        var t = Peek();
        _at++;
        switch (t.Kind)
        {
            case ExpressionTokenKind.String:
                var text = (string)t.Value!;
                // adjacent string literals concatenate, as in Python
                while (Peek().Kind == ExpressionTokenKind.String) { text += (string)Peek().Value!; _at++; }
                return _ => text;
            case ExpressionTokenKind.Number:
                var number = t.Value;
                return _ => number;
            case ExpressionTokenKind.Name:
                switch (t.Text)
                {
                    case "true" or "True": return _ => true;
                    case "false" or "False": return _ => false;
                    case "none" or "None": return _ => null;
                }
                var name = t.Text;
                return s => s.Get(name);
            case ExpressionTokenKind.Operator when t.Text == "(":
                var first = Expression();
                if (TakeOp(")")) return first;
                var items = new List<Func<TemplateScope, object?>> { first };
                while (TakeOp(",") && !IsOp(")")) items.Add(Expression());
                ExpectOp(")");
                return s => items.Select(i => i(s)).ToList();
            case ExpressionTokenKind.Operator when t.Text == "[":
                var list = new List<Func<TemplateScope, object?>>();
                while (!TakeOp("]"))
                {
                    list.Add(Expression());
                    if (!IsOp("]")) ExpectOp(",");
                }
                return s => list.Select(i => i(s)).ToList();
            case ExpressionTokenKind.Operator when t.Text == "{":
                var pairs = new List<(Func<TemplateScope, object?> Key, Func<TemplateScope, object?> Value)>();
                while (!TakeOp("}"))
                {
                    var key = Expression();
                    ExpectOp(":");
                    pairs.Add((key, Expression()));
                    if (!IsOp("}")) ExpectOp(",");
                }
                return s =>
                {
                    var d = new Dictionary<string, object?>(StringComparer.Ordinal);
                    foreach (var (k, v) in pairs) d[TemplateValues.Text(k(s))] = v(s);
                    return d;
                };
            default:
                throw new TemplateException(t.Kind == ExpressionTokenKind.End ? "an expression ends too early" : $"unexpected '{t.Text}'");
        }
    }

    /// <summary>The remaining tokens as a loop target: one name or several separated by commas.</summary>
    public List<string> Targets()
    {
        var names = new List<string> { Name() };
        while (TakeOp(",")) names.Add(Name());
        return names;
    }

}

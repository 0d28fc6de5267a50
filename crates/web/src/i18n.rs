//! UI languages: Chinese first, English second. Page texts live in one
//! table per language so a missing translation is a compile error.

/// The language a page is rendered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Zh,
    En,
}

impl Lang {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "zh" | "zh-CN" => Some(Self::Zh),
            "en" => Some(Self::En),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::Zh => "zh",
            Self::En => "en",
        }
    }

    pub fn html_lang(self) -> &'static str {
        match self {
            Self::Zh => "zh-CN",
            Self::En => "en",
        }
    }

    /// The other language, for the switch link.
    pub fn other(self) -> Self {
        match self {
            Self::Zh => Self::En,
            Self::En => Self::Zh,
        }
    }

    pub fn texts(self) -> &'static Texts {
        match self {
            Self::Zh => &ZH,
            Self::En => &EN,
        }
    }
}

/// Every fixed text of the UI.
pub struct Texts {
    pub app_name: &'static str,
    pub switch_lang: &'static str,
    pub sign_in: &'static str,
    pub sign_out: &'static str,
    pub username: &'static str,
    pub password: &'static str,
    pub bad_credentials: &'static str,
    pub too_many_attempts: &'static str,
    pub regions: &'static str,
    pub search: &'static str,
    pub search_placeholder: &'static str,
    pub no_results: &'static str,
    pub code: &'static str,
    pub name: &'static str,
    pub level: &'static str,
    pub village_type: &'static str,
    pub village_type_unset: &'static str,
    pub save: &'static str,
    pub saved: &'static str,
    pub counts: &'static str,
    pub cities: &'static str,
    pub counties: &'static str,
    pub townships: &'static str,
    pub villages: &'static str,
    pub children: &'static str,
    pub map: &'static str,
    pub map_hint: &'static str,
    pub users: &'static str,
    pub new_user: &'static str,
    pub display_name: &'static str,
    pub phone: &'static str,
    pub role: &'static str,
    pub scope: &'static str,
    pub roles: &'static str,
    pub disabled: &'static str,
    pub create: &'static str,
    pub audit: &'static str,
    pub at: &'static str,
    pub actor: &'static str,
    pub action: &'static str,
    pub target: &'static str,
    pub from_ip: &'static str,
    pub tokens: &'static str,
    pub new_token: &'static str,
    pub token_shown_once: &'static str,
    pub revoke: &'static str,
    pub revoked: &'static str,
    pub expires: &'static str,
    pub last_used: &'static str,
    pub error: &'static str,
    pub forbidden: &'static str,
    pub not_found: &'static str,
    pub home: &'static str,
}

pub static ZH: Texts = Texts {
    app_name: "数乡 · 江西数字乡村",
    switch_lang: "English",
    sign_in: "登录",
    sign_out: "退出",
    username: "用户名",
    password: "密码",
    bad_credentials: "用户名或密码错误",
    too_many_attempts: "登录失败次数过多，请稍后再试",
    regions: "行政区划",
    search: "搜索",
    search_placeholder: "输入地名，如 滕王阁",
    no_results: "没有找到匹配的地区",
    code: "区划代码",
    name: "名称",
    level: "层级",
    village_type: "村庄类型",
    village_type_unset: "未分类",
    save: "保存",
    saved: "已保存",
    counts: "下辖",
    cities: "市",
    counties: "县（区）",
    townships: "乡镇（街道）",
    villages: "村（社区）",
    children: "下级区划",
    map: "地图",
    map_hint: "点击县区查看详情",
    users: "用户",
    new_user: "新建用户",
    display_name: "姓名",
    phone: "电话",
    role: "角色",
    scope: "管辖范围",
    roles: "角色与范围",
    disabled: "已停用",
    create: "创建",
    audit: "审计日志",
    at: "时间",
    actor: "操作人",
    action: "操作",
    target: "对象",
    from_ip: "来源地址",
    tokens: "API 令牌",
    new_token: "新建令牌",
    token_shown_once: "令牌只显示这一次，请立即保存：",
    revoke: "吊销",
    revoked: "已吊销",
    expires: "到期",
    last_used: "最近使用",
    error: "出错了",
    forbidden: "超出您的权限或管辖范围",
    not_found: "页面不存在",
    home: "首页",
};

pub static EN: Texts = Texts {
    app_name: "Shuxiang · Jiangxi Digital Village",
    switch_lang: "中文",
    sign_in: "Sign in",
    sign_out: "Sign out",
    username: "Username",
    password: "Password",
    bad_credentials: "Wrong username or password",
    too_many_attempts: "Too many failed sign-ins; try again later",
    regions: "Regions",
    search: "Search",
    search_placeholder: "Place name, e.g. 滕王阁",
    no_results: "No matching region",
    code: "Code",
    name: "Name",
    level: "Level",
    village_type: "Village type",
    village_type_unset: "Not classified",
    save: "Save",
    saved: "Saved",
    counts: "Contains",
    cities: "cities",
    counties: "counties",
    townships: "townships",
    villages: "villages",
    children: "Subdivisions",
    map: "Map",
    map_hint: "Click a county to open it",
    users: "Users",
    new_user: "New user",
    display_name: "Name",
    phone: "Phone",
    role: "Role",
    scope: "Scope",
    roles: "Roles and scopes",
    disabled: "Disabled",
    create: "Create",
    audit: "Audit log",
    at: "Time",
    actor: "Actor",
    action: "Action",
    target: "Target",
    from_ip: "From",
    tokens: "API tokens",
    new_token: "New token",
    token_shown_once: "The token is shown only once; copy it now:",
    revoke: "Revoke",
    revoked: "Revoked",
    expires: "Expires",
    last_used: "Last used",
    error: "Something went wrong",
    forbidden: "Outside your role or region scope",
    not_found: "Page not found",
    home: "Home",
};

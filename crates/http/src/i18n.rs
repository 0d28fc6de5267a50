//! UI languages: Chinese first, English second. Page texts live in one
//! table per language so a missing translation is a compile error.

use shuxiang_core::auth::Role;
use shuxiang_core::{RegionLevel, VillageType};

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

    pub fn level_label(self, level: RegionLevel) -> &'static str {
        let i = RegionLevel::ALL.iter().position(|l| *l == level).unwrap_or(0);
        self.texts().level_names[i]
    }

    pub fn role_label(self, role: Role) -> &'static str {
        let i = Role::ALL.iter().position(|r| *r == role).unwrap_or(0);
        self.texts().role_names[i]
    }

    /// A village's class, or "not classified" when none is set.
    pub fn village_type_label(self, vt: Option<VillageType>) -> &'static str {
        match (vt, self) {
            (Some(v), Self::Zh) => v.label_zh(),
            (Some(v), Self::En) => v.label_en(),
            (None, _) => self.texts().village_type_unset,
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
    pub nav_regions: &'static str,
    pub nav_users: &'static str,
    pub nav_audit: &'static str,
    pub nav_tokens: &'static str,
    pub nav_monitoring: &'static str,
    pub nav_inputs: &'static str,
    pub nav_dealers: &'static str,
    pub nav_logistics: &'static str,
    pub nav_dispatch: &'static str,
    pub main_nav: &'static str,
    /// Between a label and its value (full width in Chinese).
    pub colon: &'static str,
    pub breadcrumbs: &'static str,
    pub search_results: &'static str,
    pub region: &'static str,
    pub outline: &'static str,
    pub edit_village_type: &'static str,
    pub detail: &'static str,
    pub next_page: &'static str,
    pub newest: &'static str,
    pub no_entries: &'static str,
    pub filter: &'static str,
    pub status: &'static str,
    pub active: &'static str,
    pub created_at: &'static str,
    pub never: &'static str,
    pub prefix: &'static str,
    pub owner: &'static str,
    pub expires_in_days: &'static str,
    pub user_created: &'static str,
    pub user_updated: &'static str,
    pub edit_user: &'static str,
    pub new_password: &'static str,
    pub roles_hint: &'static str,
    /// Names the line of the roles field an error is on; `{line}` is its number.
    pub role_line: &'static str,
    pub role_line_format: &'static str,
    pub disable_user: &'static str,
    pub scope_hint: &'static str,
    pub optional: &'static str,
    pub bad_request: &'static str,
    pub server_error: &'static str,
    pub back_home: &'static str,
    /// Level names in the order of `RegionLevel::ALL`.
    pub level_names: [&'static str; 5],
    /// Role names in the order of `Role::ALL`.
    pub role_names: [&'static str; 7],
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
    nav_regions: "地区",
    nav_users: "用户",
    nav_audit: "审计",
    nav_tokens: "令牌",
    nav_monitoring: "监测",
    nav_inputs: "农资监管",
    nav_dealers: "农资台账",
    nav_logistics: "物流",
    nav_dispatch: "调度",
    main_nav: "主导航",
    colon: "：",
    breadcrumbs: "位置",
    search_results: "搜索结果",
    region: "地区",
    outline: "边界",
    edit_village_type: "设置村庄类型",
    detail: "详情",
    next_page: "下一页",
    newest: "最新",
    no_entries: "暂无记录",
    filter: "筛选",
    status: "状态",
    active: "正常",
    created_at: "创建时间",
    never: "永不",
    prefix: "前缀",
    owner: "用户编号",
    expires_in_days: "有效天数（留空为永久）",
    user_created: "用户已创建：",
    user_updated: "用户已更新：",
    edit_user: "编辑用户",
    new_password: "新密码（留空则不修改）",
    roles_hint: "每行一个“角色:范围”，如 official:360102。可用角色：",
    role_line: "角色与范围第 {line} 行：",
    role_line_format: "应写作“角色:范围”，如 official:360102",
    disable_user: "停用此用户（其登录会话随即失效）",
    scope_hint: "区划代码，如 360102；* 表示全国",
    optional: "（选填）",
    bad_request: "请求有误",
    server_error: "服务器内部错误，已记录，请稍后再试",
    back_home: "返回首页",
    level_names: ["省", "市", "县（区）", "乡镇（街道）", "村（社区）"],
    role_names: [
        "管理员",
        "政府工作人员",
        "村干部/信息员",
        "农资经营店",
        "农户/合作社",
        "物流/冷链",
        "专家",
    ],
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
    nav_regions: "Regions",
    nav_users: "Users",
    nav_audit: "Audit",
    nav_tokens: "Tokens",
    nav_monitoring: "Monitoring",
    nav_inputs: "Farm inputs",
    nav_dealers: "Input ledger",
    nav_logistics: "Logistics",
    nav_dispatch: "Dispatch",
    main_nav: "Main navigation",
    colon: ": ",
    breadcrumbs: "You are here",
    search_results: "Search results",
    region: "Region",
    outline: "Boundary",
    edit_village_type: "Set the village type",
    detail: "Details",
    next_page: "Next page",
    newest: "Newest",
    no_entries: "Nothing here yet",
    filter: "Filter",
    status: "Status",
    active: "Active",
    created_at: "Created",
    never: "Never",
    prefix: "Prefix",
    owner: "User id",
    expires_in_days: "Valid for days (empty: no expiry)",
    user_created: "User created: ",
    user_updated: "User updated: ",
    edit_user: "Edit user",
    new_password: "New password (leave empty to keep the current one)",
    roles_hint: "One role:scope per line, e.g. official:360102. Roles:",
    role_line: "Roles and scopes, line {line}: ",
    role_line_format: "expected role:scope, e.g. official:360102",
    disable_user: "Disable this user (their sessions end at once)",
    scope_hint: "Region code such as 360102; * for the whole country",
    optional: "(optional)",
    bad_request: "The request could not be processed",
    server_error: "Internal error; it has been logged, please try again later",
    back_home: "Back to the start page",
    level_names: ["Province", "City", "County", "Township", "Village"],
    role_names: [
        "Administrator",
        "Official",
        "Village staff",
        "Input dealer",
        "Farmer / cooperative",
        "Logistics / cold chain",
        "Expert",
    ],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_names_match_the_kernel() {
        for level in RegionLevel::ALL {
            assert_eq!(Lang::Zh.level_label(level), level.label_zh());
        }
        for role in Role::ALL {
            assert_eq!(Lang::Zh.role_label(role), role.label_zh());
        }
        assert_eq!(Lang::En.level_label(RegionLevel::Township), "Township");
        assert_eq!(Lang::En.role_label(Role::Official), "Official");
    }

    #[test]
    fn village_types_have_both_languages() {
        assert_eq!(Lang::Zh.village_type_label(Some(VillageType::Suburban)), "城郊融合类");
        assert_eq!(
            Lang::En.village_type_label(Some(VillageType::Suburban)),
            "Suburban integration"
        );
        assert_eq!(Lang::Zh.village_type_label(None), "未分类");
        assert_eq!(Lang::En.village_type_label(None), "Not classified");
    }
}
